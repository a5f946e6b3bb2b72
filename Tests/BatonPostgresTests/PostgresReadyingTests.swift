@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import BatonPostgres

/// The one connection of a candidate process is readied (its session runs the release's functions once) before
/// any request gets it, while its notifications are read and its keep-alive check runs.
@Suite struct PostgresReadyingTests {
    @Test func requestsGetTheConnectionOnlyOnceItIsReadied() async throws {
        guard let url = try TestServer.url() else { return }
        let settings = try PostgresConnectionSettings(url)
        let shared = PostgresSharedConnection(
            executor: PostgresLoopExecutor(on: PostgresConnection.defaultEventLoopGroup.any()))
        let signals = ChangeSignals()
        let readied = Gate()
        let releaseReadying = Gate()
        var listener = PostgresChangeListener(
            settings: try settings.connectionConfiguration(.init(maximumConnections: 1)),
            channel: unique("baton_states_readying"),
            keepAlive: .seconds(1),
            keepAliveTimeout: .seconds(5),
            clock: .continuous,
            signals: signals,
            states: PushedLeaderStates(watched: { [] }),
            logger: Logger(label: "test"),
            redactedURL: "test",
            loop: nil
        )
        listener.shared = shared
        listener.warmUp = { connection, logger in
            readied.open()
            await releaseReadying.wait()
            _ = try await connection.query(PostgresQuery(unsafeSQL: "SELECT 1"), logger: logger).collect()
        }
        let running = Task { [listener] in await listener.run() }
        defer {
            running.cancel()
            shared.close(CancellationError())
        }
        await readied.wait()
        let answered = Gate()
        let request = Task {
            let value = try await shared.run(Logger(label: "test")) { connection, logger -> Int? in
                let rows = try await connection.query(PostgresQuery(unsafeSQL: "SELECT 7"), logger: logger)
                for try await value in rows.decode(Int.self) { return value }
                return nil
            }
            answered.open()
            return value
        }
        // The connection listens, and is being readied: the request waits for it.
        try await Task.sleep(for: .milliseconds(300))
        #expect(!answered.isOpen, "a request got the connection before it was readied")
        releaseReadying.open()
        #expect(try await request.value == 7)
    }
}

/// Opened once; every wait returns then.
private final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
