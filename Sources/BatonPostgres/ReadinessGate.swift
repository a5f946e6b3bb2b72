import Baton
import Synchronization

/// Where a store's operations wait for its `run()` to be ready, and learn that it has ended.
///
/// `run()` calls ``open(_:)`` with what operations need (a connection pool) once it is ready, and ``end(_:)``
/// when it stops or fails to start. ``value()`` returns the opened value, waiting for it while `run()` is
/// starting (for as long as the calling task is not cancelled), and throws the end's error after ``end(_:)``.
/// While a start attempt has failed and `run()` tries again (``failing(_:)``), ``value()`` throws that failure
/// at once instead of waiting.
final class ReadinessGate<Value: Sendable>: Sendable {
    private enum State {
        case starting(waiters: [Int: CheckedContinuation<Value, any Error>], next: Int)
        /// The last start attempt failed with the error; `run()` tries again.
        case failing(BatonError, next: Int)
        case ready(Value)
        case ended(BatonError)
    }

    private let state = Mutex(State.starting(waiters: [:], next: 0))

    init() {}

    /// Makes `value` available to every waiting and later ``value()`` call. Does nothing once ended.
    func open(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            switch state {
            case .starting(let waiters, _):
                state = .ready(value)
                return Array(waiters.values)
            case .failing:
                state = .ready(value)
                return []
            case .ready, .ended:
                return []
            }
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// A start attempt failed with `error` and `run()` will try again: waiting and later ``value()`` calls throw
    /// `error` until the gate opens or ends. Does nothing once opened or ended.
    func failing(_ error: BatonError) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            switch state {
            case .starting(let waiters, let next):
                state = .failing(error, next: next)
                return Array(waiters.values)
            case .failing(_, let next):
                state = .failing(error, next: next)
                return []
            case .ready, .ended:
                return []
            }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Ends the gate: waiting and later ``value()`` calls throw `error`. The first end's error stays.
    func end(_ error: BatonError) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            if case .ended = state { return [] }
            defer { state = .ended(error) }
            if case .starting(let waiters, _) = state { return Array(waiters.values) }
            return []
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Whether ``end(_:)`` was called.
    var isEnded: Bool {
        state.withLock { if case .ended = $0 { true } else { false } }
    }

    /// The opened value, once it is there.
    /// - Throws: the end's error once ended; `CancellationError` if the calling task is cancelled first.
    func value() async throws -> Value {
        let now = try state.withLock { state throws -> Lookup in
            switch state {
            case .ready(let value): return .ready(value)
            case .ended(let error), .failing(let error, _): throw error
            case .starting(let waiters, let next):
                state = .starting(waiters: waiters, next: next + 1)
                return .wait(next)
            }
        }
        switch now {
        case .ready(let value): return value
        case .wait(let id): return try await wait(id)
        }
    }

    private enum Lookup {
        case ready(Value)
        case wait(Int)
    }

    private func wait(_ id: Int) async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome = state.withLock { state -> Result<Value, any Error>? in
                    switch state {
                    case .ready(let value): return .success(value)
                    case .ended(let error), .failing(let error, _): return .failure(error)
                    case .starting(var waiters, let next):
                        if Task.isCancelled { return .failure(CancellationError()) }
                        waiters[id] = continuation
                        state = .starting(waiters: waiters, next: next)
                        return nil
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Value, any Error>? in
                guard case .starting(var waiters, let next) = state else { return nil }
                let waiter = waiters.removeValue(forKey: id)
                state = .starting(waiters: waiters, next: next)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
