import Baton
import BatonRedis
import Foundation
import Testing

/// The Redis servers `scripts/test` started: `BATON_TEST_REDIS_URL` (one node) and `BATON_TEST_REDLOCK_URL`
/// (three nodes, `redis://127.0.0.1:p1,...`). Without them a test passes trivially outside CI, and fails under
/// `CI=true` (a missing server is never a skip there).
enum RedisTestServer {
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// The URL in `variable`, or nil after recording an issue under CI.
    static func url(_ variable: String = "BATON_TEST_REDIS_URL") -> String? {
        if let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty { return url }
        if isCI {
            Issue.record("\(variable) is not set under CI=true: scripts/test must start redis-server")
        }
        return nil
    }

    /// The single-node URL's port, for tests that restart the server through `redis-cli`.
    static func port(of url: String) -> Int? {
        (try? StoreURL(url))?.hosts.first?.port
    }
}

/// A unique name, so tests sharing a server never collide.
func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8))" }
