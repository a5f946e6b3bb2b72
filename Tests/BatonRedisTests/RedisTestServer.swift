import Baton
import BatonRedis
import Foundation
import Synchronization
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

/// Runs a store for `url` while `body` runs, through the front every caller uses; `body` gets the front and the
/// store's driver (for tests that look inside).
@discardableResult
func withRedisStore<T>(
    _ url: String,
    _ body: (LeaseStore, RedisLeaseStore) async throws -> T
) async throws -> T {
    let driver = try RedisLeaseStore(url)
    return try await LeaseStore(driver).withRunning { store in try await body(store, driver) }
}

/// A unique name, so tests sharing a server never collide.
func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8))" }

/// Records what a ``LeaseStore/changes(key:)`` sequence yields, consuming it in a task of its own.
final class ChangeRecorder: Sendable {
    private struct State {
        var observations: [LeaderInfo?] = []
        var finished = false
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ changes: LeaderChanges) {
        let task = Task { [self] in
            do {
                for try await info in changes { self.state.withLock { $0.observations.append(info) } }
            } catch {}
            self.state.withLock { $0.finished = true }
        }
        self.task.withLock { $0 = task }
    }

    var observations: [LeaderInfo?] { state.withLock { $0.observations } }
    var finished: Bool { state.withLock { $0.finished } }

    /// Waits until `condition` holds for the observations, for at most `timeout`. Returns whether it held.
    func wait(timeout: Duration = .seconds(5), until condition: ([LeaderInfo?]) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(observations) { return true }
            try await Task.sleep(for: .milliseconds(5))
        }
        return condition(observations)
    }

    func cancel() { task.withLock { $0?.cancel() } }
}
