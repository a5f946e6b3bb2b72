import Baton
import BatonTestKit
import Foundation
import Synchronization
import Testing

/// The etcd servers and tools `scripts/test` provides: `BATON_TEST_ETCD_URL` (one member), `BATON_TEST_ETCDS_URL`
/// (TLS and user/password auth) and `BATON_TEST_ETCDS_BAD_PASSWORD_URL`, `BATON_TEST_ETCD_SERVER` (the etcd binary,
/// for tests that run a server of their own) and `BATON_TEST_ETCDCTL`. Without them a test passes trivially
/// outside CI, and fails under `CI=true` (see ``RealServer``).
enum EtcdTestServer {
    /// The value of `variable` (see ``RealServer/require(_:)``).
    static func value(_ variable: String = "BATON_TEST_ETCD_URL") throws -> String? {
        try RealServer.require(variable)
    }

    /// The first endpoint of an `etcd://` URL as `host:port`, for etcdctl.
    static func endpoint(of url: String) -> String? {
        guard let host = (try? StoreURL(url))?.hosts.first else { return nil }
        return "\(host.name):\(host.port ?? 2379)"
    }
}

/// Records the events of a ``LeaderElector`` with the monotonic time each arrived, consuming them in a task.
final class EventRecorder: Sendable {
    private let recorded = Mutex<[(ContinuousClock.Instant, ElectorEvent)]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ events: AsyncStream<ElectorEvent>) {
        let task = Task { [self] in
            for await event in events { self.recorded.withLock { $0.append((.now, event)) } }
        }
        self.task.withLock { $0 = task }
    }

    var events: [(ContinuousClock.Instant, ElectorEvent)] { recorded.withLock { $0 } }

    func cancel() { task.withLock { $0?.cancel() } }
}

/// A value shared between tasks.
final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>

    init(_ value: Value) { state = Mutex(value) }

    var value: Value { state.withLock { $0 } }

    func update(_ body: (inout Value) -> Void) { state.withLock { body(&$0) } }
}
