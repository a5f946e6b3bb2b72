@_spi(BatonStoreKit) import Baton
import Synchronization

/// A value that one task will provide and other tasks wait for: a connection being made by the store's `run()`.
///
/// Waiting is cancellable: a waiter whose task is cancelled stops waiting with `CancellationError`, and the value
/// still goes to everyone else. The value may arrive before anyone waits; it is kept. It is resolved once; later
/// resolutions are ignored.
final class RedisPending<Value: Sendable>: Sendable {
    private enum State {
        case waiting([Int: CheckedContinuation<Value, any Error>], next: Int)
        case resolved(Result<Value, any Error>)
    }

    private let state = Mutex(State.waiting([:], next: 0))

    init() {}

    /// Resolves with `result` and wakes every waiter; a no-op once resolved.
    func resolve(_ result: Result<Value, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            guard case .waiting(let waiters, _) = state else { return [] }
            state = .resolved(result)
            return Array(waiters.values)
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// The value, once resolved.
    /// - Throws: the error it was resolved with, or `CancellationError` if the waiting task is cancelled first.
    func value() async throws -> Value {
        let id = state.withLock { state -> Int? in
            guard case .waiting(let waiters, let next) = state else { return nil }
            state = .waiting(waiters, next: next + 1)
            return next
        }
        guard let id else { return try resolvedResult!.get() }
        return try await RequestAbort.whileWaiting {
            try await wait(id)
        } onAbort: { [self] reason in
            waiter(id)?.resume(throwing: reason)
        }
    }

    private func wait(_ id: Int) async throws -> Value {
        let abort = RequestAbort.current
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let now = state.withLock { state -> Result<Value, any Error>? in
                    switch state {
                    case .resolved(let result):
                        return result
                    case .waiting(var waiters, let next):
                        if Task.isCancelled { return .failure(CancellationError()) }
                        // Aborted before this waiter was in the table, where the abort looks for it.
                        if let reason = abort?.reason { return .failure(reason) }
                        waiters[id] = continuation
                        state = .waiting(waiters, next: next)
                        return nil
                    }
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            waiter(id)?.resume(throwing: CancellationError())
        }
    }

    /// Takes waiter `id` out of the table, to resume it.
    private func waiter(_ id: Int) -> CheckedContinuation<Value, any Error>? {
        state.withLock { state in
            guard case .waiting(var waiters, let next) = state else { return nil }
            let waiter = waiters.removeValue(forKey: id)
            state = .waiting(waiters, next: next)
            return waiter
        }
    }

    private var resolvedResult: Result<Value, any Error>? {
        state.withLock { state in
            if case .resolved(let result) = state { result } else { nil }
        }
    }
}
