import Baton
import Logging
import PostgresNIO
import Synchronization

/// Where a ``PostgresLeaseStore`` runs its requests: on a connection of its pool, or, with a pool of one
/// (``PostgresLeaseStore/Configuration/maximumConnections`` 1), on the one connection it also listens on.
enum PostgresConnections: Sendable {
    case pool(PostgresClient)
    case shared(PostgresSharedConnection)
}

/// The one connection of a store that opens one connection only: its change listener's, on which requests run
/// too, one at a time (a transaction must not interleave with another request's statements), in the order they
/// came. A candidate process (`baton campaign`, `baton run`) then holds one server connection however many keys
/// it leads or waits for, so a server's default 100 connections serve about 100 of them.
///
/// The listener hands its connection over once it listens (``connected(_:)``) and takes it back when it is lost
/// (``disconnected(_:)``). A request waits for its turn and for a connection; cancelling it (its deadline, its
/// caller) gives up either wait, or stops waiting for its statement, which runs to its end and holds the turn
/// until then (closing the connection to fail it would fail every other request and the listener too; a
/// connection that died silently is closed by the listener's check within about two seconds). While the
/// listener cannot connect, a request fails at once with the last connection failure instead of waiting.
final class PostgresSharedConnection: Sendable {
    private struct State {
        var connection: PostgresConnection?
        var lastFailure: (any Error)?
        /// Whether a request holds the turn.
        var busy = false
        var nextID = 0
        /// Requests waiting for the turn, in arrival order.
        var turns: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
        /// Requests holding the turn that wait for a connection.
        var connectionWaiters: [Int: CheckedContinuation<PostgresConnection, any Error>] = [:]
        var closed = false
        /// Whether the connection's session ran the release's functions once (``claimReadying()``).
        var readied = false
    }

    private let state = Mutex(State())
    /// Where the statements run: the connection's loop.
    private let executor: any TaskExecutor

    init(executor: any TaskExecutor) {
        self.executor = executor
    }

    /// The listener listens on `connection`: requests may use it.
    func connected(_ connection: PostgresConnection) {
        let waiters = state.withLock { state in
            state.connection = connection
            state.lastFailure = nil
            state.readied = false
            defer { state.connectionWaiters = [:] }
            return Array(state.connectionWaiters.values)
        }
        for waiter in waiters { waiter.resume(returning: connection) }
    }

    /// True once per connection, for the caller that is to run the release's functions on it
    /// (``PostgresSchema/readyRelease()``); false while there is no connection.
    func claimReadying() -> Bool {
        state.withLock { state in
            guard state.connection != nil, !state.readied else { return false }
            state.readied = true
            return true
        }
    }

    /// The listener lost its connection (or could not make one, `failure`): requests wait for the next one, or
    /// fail at once with `failure` while it stands.
    func disconnected(_ failure: (any Error)?) {
        let waiters = state.withLock { state -> [CheckedContinuation<PostgresConnection, any Error>] in
            state.connection = nil
            state.lastFailure = failure
            guard failure != nil else { return [] }
            defer { state.connectionWaiters = [:] }
            return Array(state.connectionWaiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: failure!) }
    }

    /// The store stopped: every waiting request fails, and later ones at once.
    func close(_ error: any Error) {
        let (turns, waiters) = state.withLock { state in
            state.closed = true
            state.connection = nil
            state.lastFailure = error
            defer {
                state.turns = []
                state.connectionWaiters = [:]
            }
            return (state.turns.map(\.continuation), Array(state.connectionWaiters.values))
        }
        for turn in turns { turn.resume(throwing: error) }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Runs `body` on the connection in this request's turn. Cancelling the task gives up the wait, or closes the
    /// connection while `body` runs on it.
    func run<T: Sendable>(
        _ logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await takeTurn(id)
        let connection: PostgresConnection
        do {
            connection = try await self.connection(id)
        } catch {
            passTurn()
            throw error
        }
        // The statement runs to its end in a task of its own (on the connection's loop), which holds the turn until
        // then; a cancelled caller stops waiting for it at once. Closing the connection to fail the statement would
        // fail every other request and the listener with it; a connection that died silently is closed by the
        // listener's check.
        let outcome = Outcome<T>()
        Task(executorPreference: executor) {
            let result = await Result(catching: { try await body(connection, logger) })
            self.passTurn()
            outcome.finish(result)
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in outcome.wait(continuation) }
        } onCancel: {
            outcome.finish(.failure(CancellationError()))
        }
    }

    /// The first of a statement's outcome and its caller's cancellation, for the caller.
    private final class Outcome<T: Sendable>: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, result: Result<T, any Error>?)>(
            (nil, nil))

        func wait(_ continuation: CheckedContinuation<T, any Error>) {
            let result = state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.continuation = continuation
                return nil
            }
            if let result { continuation.resume(with: result) }
        }

        func finish(_ result: Result<T, any Error>) {
            let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
                guard state.result == nil else { return nil }
                state.result = result
                defer { state.continuation = nil }
                return state.continuation
            }
            continuation?.resume(with: result)
        }
    }

    private func takeTurn(_ id: Int) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Step {
                    case go
                    case fail(any Error)
                    case wait
                }
                let step = state.withLock { state -> Step in
                    if state.closed { return .fail(state.lastFailure ?? CancellationError()) }
                    if Task.isCancelled { return .fail(CancellationError()) }
                    if !state.busy {
                        state.busy = true
                        return .go
                    }
                    state.turns.append((id, continuation))
                    return .wait
                }
                switch step {
                case .go: continuation.resume()
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: break
                }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.turns.firstIndex(where: { $0.id == id }) else { return nil }
                return state.turns.remove(at: index).continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    private func passTurn() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard !state.turns.isEmpty else {
                state.busy = false
                return nil
            }
            return state.turns.removeFirst().continuation
        }
        next?.resume()
    }

    private func connection(_ id: Int) async throws -> PostgresConnection {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<PostgresConnection, any Error>) in
                enum Step {
                    case ready(PostgresConnection)
                    case fail(any Error)
                    case wait
                }
                let step = state.withLock { state -> Step in
                    if Task.isCancelled { return .fail(CancellationError()) }
                    if let connection = state.connection, !connection.isClosed { return .ready(connection) }
                    if let failure = state.lastFailure { return .fail(failure) }
                    state.connectionWaiters[id] = continuation
                    return .wait
                }
                switch step {
                case .ready(let connection): continuation.resume(returning: connection)
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: break
                }
            }
        } onCancel: {
            let waiting = state.withLock { $0.connectionWaiters.removeValue(forKey: id) }
            waiting?.resume(throwing: CancellationError())
        }
    }
}
