import Baton
import BatonRedis
import BatonTestKit
import Testing

/// Every check of the conformance suite against a real `redis-server`, one store per check (so each has its own
/// connections and pub/sub connection, as separate processes would).
@Suite struct RedisConformanceTests {
    struct Harness: StoreHarness {
        let store: LeaseStore
        /// A second store on the same server, with connections of its own, running for the whole check.
        let other: LeaseStore
        func makeStore() async throws -> LeaseStore { store }
        func makeOtherInstance() async throws -> LeaseStore { other }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // Longer than SQLite's 500 ms: three suites (one node, Redlock, Redlock with a node down) run their checks
        // at once on a two-core machine, and a few store calls must fit in a fraction of the ttl.
        var ttl: Duration { .seconds(1) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformance(_ check: ConformanceCheck) async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { store, _ in
            try await withRedisStore(url) { other, _ in
                await #expect(throws: Never.self) { try await check.run(Harness(store: store, other: other)) }
            }
        }
    }
}
