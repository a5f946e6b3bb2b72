import Synchronization

/// The store requests of one campaign (acquire, renew, check, presence), each in a task of its own: the campaign
/// acts on their answers as they come and, when it ends, cancels those still in flight instead of waiting for them.
final class StoreRequests: Sendable {
    private struct State {
        var next = 0
        var tasks: [Int: Task<Void, Never>] = [:]
        var cancelled = false
    }

    private let state = Mutex(State())

    /// Starts `request` unless the campaign has ended.
    func start(_ request: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            guard !state.cancelled else { return }
            let id = state.next
            state.next += 1
            state.tasks[id] = Task { [weak self] in
                await request()
                _ = self?.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Cancels every request in flight, and any started later.
    func cancelAll() {
        let tasks = state.withLock { state in
            state.cancelled = true
            defer { state.tasks = [:] }
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }
}

/// A one-shot gate: ``wait()`` returns once ``open()`` has been called, whichever comes first.
final class OnceGate: Sendable {
    private struct State {
        var isOpen = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Opens the gate; returns true for the call that opened it.
    @discardableResult
    func open() -> Bool {
        let (opened, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            if state.isOpen { return (false, nil) }
            state.isOpen = true
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return opened
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isOpen = state.withLock { state in
                if !state.isOpen { state.waiter = continuation }
                return state.isOpen
            }
            if isOpen { continuation.resume() }
        }
    }
}
