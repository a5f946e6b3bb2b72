import Synchronization

/// A mutual-exclusion lock for tasks, granted in the order it was asked for.
///
/// Waiting suspends the task (it never blocks a thread). A task cancelled while it waits leaves the queue and
/// gets `CancellationError`; a task that was already granted the lock keeps it and must unlock it, so the lock
/// is never lost and never granted twice.
final class AsyncFIFOLock: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var locked = false
        var nextID: UInt64 = 0
        var waiters: [Waiter] = []
    }

    private let state = Mutex(State())

    init() {}

    /// Waits until the lock is granted to the calling task.
    /// - Throws: `CancellationError` if the task is cancelled before the lock is granted (the lock is then
    ///   not held).
    func lock() async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case granted, cancelled, queued }
                let outcome = state.withLock { state -> Outcome in
                    // The cancellation flag is set before the handler runs, and the handler takes this mutex:
                    // either it ran already (and found nothing to cancel), so the flag is visible here, or it
                    // will run later and find this waiter in the queue.
                    if Task.isCancelled { return .cancelled }
                    if !state.locked {
                        state.locked = true
                        return .granted
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .queued
                }
                switch outcome {
                case .granted: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// How many tasks wait for the lock now.
    var waitingCount: Int { state.withLock { $0.waiters.count } }

    /// Releases the lock, granting it to the longest waiting task if there is one.
    func unlock() {
        let next = state.withLock { state -> Waiter? in
            precondition(state.locked, "AsyncFIFOLock.unlock() called while not locked")
            if state.waiters.isEmpty {
                state.locked = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.continuation.resume()
    }
}
