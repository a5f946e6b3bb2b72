import Synchronization

/// A mutual-exclusion lock for tasks, granted in the order it was asked for.
///
/// Waiting suspends the task (it never blocks a thread). A task cancelled while it waits leaves the queue and
/// gets `CancellationError`; a task that was already granted the lock keeps it and must unlock it, so the lock
/// is never lost and never granted twice.
final class AsyncFIFOLock: Sendable {
    private struct State {
        var locked = false
        var nextID: UInt64 = 0
        /// The waiting tasks by id; a cancelled waiter leaves this dictionary at once.
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        /// The ids in arrival order from `head` on, possibly including ids that left `waiters` (cancelled).
        var order: [UInt64] = []
        var head = 0

        /// Takes the longest waiting task out of the queue, in constant time on average.
        mutating func takeFirst() -> CheckedContinuation<Void, any Error>? {
            defer {
                // Drop the consumed prefix once it is most of the array, so the queue does not grow without bound.
                if head > 64, head * 2 > order.count {
                    order.removeFirst(head)
                    head = 0
                }
            }
            while head < order.count {
                let id = order[head]
                head += 1
                if let waiter = waiters.removeValue(forKey: id) { return waiter }
            }
            return nil
        }
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
                    state.waiters[id] = continuation
                    state.order.append(id)
                    return .queued
                }
                switch outcome {
                case .granted: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    /// How many tasks wait for the lock now.
    var waitingCount: Int { state.withLock { $0.waiters.count } }

    /// Releases the lock, granting it to the longest waiting task if there is one.
    func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            precondition(state.locked, "AsyncFIFOLock.unlock() called while not locked")
            guard let next = state.takeFirst() else {
                state.locked = false
                return nil
            }
            return next
        }
        next?.resume()
    }
}
