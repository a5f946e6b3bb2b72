@_spi(BatonStoreKit) import Baton
import Synchronization

/// A deadline on the store's clock for work that gives up when its task is cancelled.
///
/// A PostgreSQL query cannot be cancelled, but closing its connection fails it: work run under a deadline
/// closes its connection when cancelled (see ``PostgresLeaseStore/onConnection(_:_:_:)`` and the change
/// listener's keep-alive check), so cancelling it at the deadline usually ends it at once. The deadline does not
/// wait for that: a request waiting for a connection from a pool that cannot reach its server was seen to go on
/// waiting long after its cancellation, and the caller (a change feed's read) must not wait with it.
enum PostgresDeadline {
    /// Thrown when the deadline passed first.
    struct Passed: Error {}

    /// Runs `body` in a task of its own; if `limit` passes on `clock` first, cancels it and throws ``Passed`` at
    /// once (the task ends when it heeds its cancellation). Cancelling the caller cancels `body` and throws
    /// `CancellationError` at once too.
    static func run<T: Sendable>(
        _ limit: Duration,
        clock: BatonClock,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                race.start(
                    continuation,
                    work: Task { race.finish(await Result(catching: { try await body() })) },
                    timer: Task {
                        guard (try? await clock.sleep(for: limit)) != nil else { return }
                        race.finish(.failure(Passed()))
                    }
                )
            }
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// The first of the work's outcome, the deadline and the caller's cancellation resumes the caller; the
    /// others are dropped, and both tasks are cancelled.
    private final class Race<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var tasks: [Task<Void, Never>] = []
            /// An outcome that came before the continuation was set (a cancellation at once).
            var early: Result<T, any Error>?
            var done = false
        }

        private let state = Mutex(State())

        func start(_ continuation: CheckedContinuation<T, any Error>, work: Task<Void, Never>, timer: Task<Void, Never>)
        {
            let early = state.withLock { state -> Result<T, any Error>? in
                state.tasks = [work, timer]
                if let early = state.early { return early }
                state.continuation = continuation
                return nil
            }
            if let early {
                work.cancel()
                timer.cancel()
                continuation.resume(with: early)
            }
        }

        func finish(_ outcome: Result<T, any Error>) {
            let (continuation, tasks) = state.withLock {
                state -> (CheckedContinuation<T, any Error>?, [Task<Void, Never>]) in
                guard !state.done else { return (nil, []) }
                state.done = true
                guard let continuation = state.continuation else {
                    state.early = outcome
                    return (nil, state.tasks)
                }
                state.continuation = nil
                return (continuation, state.tasks)
            }
            for task in tasks { task.cancel() }
            continuation?.resume(with: outcome)
        }
    }
}

extension Result where Failure == any Error {
    /// The outcome of `body`.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
