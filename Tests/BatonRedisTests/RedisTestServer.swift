import Baton
import BatonRedis
import BatonTestKit
import Foundation
import Synchronization
import Testing

/// The Redis servers `scripts/test` started: `BATON_TEST_REDIS_URL` (one node) and `BATON_TEST_REDLOCK_URL`
/// (three nodes, `redis://127.0.0.1:p1,...`). Without them a test passes trivially outside CI, and fails under
/// `CI=true` (see ``RealServer``).
enum RedisTestServer {
    /// The URL in `variable` (see ``RealServer/require(_:)``).
    static func url(_ variable: String = "BATON_TEST_REDIS_URL") throws -> String? {
        try RealServer.require(variable)
    }

    /// The single-node URL's port, for tests that restart the server through `redis-cli`.
    static func port(of url: String) -> Int? {
        (try? StoreURL(url))?.hosts.first?.port
    }
}

/// Runs a store for `url` while `body` runs, through the front every caller uses; `body` gets the front and the
/// store's driver (for tests that look inside).
@discardableResult
func withRedisStore<T>(
    _ url: String,
    configuration: RedisLeaseStore.Configuration = RedisLeaseStore.Configuration(),
    _ body: (LeaseStore, RedisLeaseStore) async throws -> T
) async throws -> T {
    let driver = try RedisLeaseStore(url: try StoreURL(url), configuration: configuration)
    return try await LeaseStore(driver).withRunning { store in try await body(store, driver) }
}

/// A configuration whose connections send no probes: for tests of terms shorter than a second, where the probes
/// (lowered to a quarter and a half of the shortest ttl) would take a slow answer under a loaded test run for a dead
/// connection. The tests of dead connections keep the probes.
let unprobedRedis: RedisLeaseStore.Configuration = {
    var configuration = RedisLeaseStore.Configuration()
    configuration.probeInterval = nil
    return configuration
}()
