import Synchronization

/// The deadlines of one store's requests: each request's action (cancel it, report a timeout) runs if the request
/// is still going once ``LeaseStore/Configuration/requestTimeout`` has passed.
///
/// On the host's clock one watcher task serves every request. All of a store's deadlines are "now plus the same
/// timeout", so they come due in the order they were set: they wait in arrival order, and the watcher sleeps
/// until the oldest. A request that ends first only drops its entry; setting and dropping a deadline is a few
/// instructions under a lock, with no timer of the system and no thread woken. The watcher ends when no deadline
/// is left, and the next request starts a new one.
///
/// On any other clock (a test's manual clock) every deadline is a task sleeping on that clock, so that a test sees
/// each request's deadline as a sleeper of its own.
final class RequestDeadlines: Sendable {
    typealias Action = @Sendable () -> Void

    private struct State {
        /// The ids of the set deadlines, oldest first (from `head` on; ids whose action is gone were dropped).
        var order: [(id: UInt64, deadline: Duration)] = []
        var head = 0
        var actions: [UInt64: Action] = [:]
        var nextID: UInt64 = 0
        var watching = false

        /// Forgets the dropped entries at the front of the order.
        mutating func trim() {
            while head < order.count, actions[order[head].id] == nil { head += 1 }
            if head == order.count {
                order.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    /// A set deadline: dropped with ``RequestDeadlines/drop(_:)`` when its request ends first.
    enum Handle: Sendable {
        case shared(UInt64)
        case sleeper(Task<Void, any Error>)
    }

    private let clock: BatonClock
    private let timeout: Duration
    private let shared: Bool
    private let state = Mutex(State())

    /// - Parameter shared: one watcher for all deadlines (default: on the host's clock only).
    init(clock: BatonClock, timeout: Duration, shared: Bool? = nil) {
        self.clock = clock
        self.timeout = timeout
        self.shared = shared ?? clock.isHostClock
    }

    /// Runs `action` once the timeout has passed from now, unless the handle is dropped first.
    func set(_ action: @escaping Action) -> Handle {
        guard shared else {
            let deadline = clock.now() + timeout
            return .sleeper(
                Task { [clock] in
                    try await clock.sleep(until: deadline)
                    action()
                })
        }
        let (id, startWatcher) = state.withLock { state -> (UInt64, Bool) in
            state.nextID += 1
            // The time is read under the lock, so the order of the entries is the order of their deadlines.
            state.order.append((state.nextID, clock.now() + timeout))
            state.actions[state.nextID] = action
            defer { state.watching = true }
            return (state.nextID, !state.watching)
        }
        if startWatcher { Task { await self.watch() } }
        return .shared(id)
    }

    /// Makes sure the action of `handle` does not run, if it has not run yet.
    func drop(_ handle: Handle) {
        switch handle {
        case .sleeper(let task):
            task.cancel()
        case .shared(let id):
            state.withLock { state in
                state.actions[id] = nil
                state.trim()
            }
        }
    }

    /// The number of deadlines set and not yet dropped or run.
    var count: Int { state.withLock { $0.actions.count } }

    /// Sleeps until the oldest deadline, runs the actions that are due, and so on until none is left.
    private func watch() async {
        while true {
            let next = state.withLock { state -> Duration? in
                state.trim()
                guard state.head < state.order.count else {
                    state.watching = false
                    return nil
                }
                return state.order[state.head].deadline
            }
            guard let next else { return }
            // Never cancelled: it ends when no deadline is left.
            try? await clock.sleep(until: next)
            let due = state.withLock { state -> [Action] in
                let now = clock.now()
                var due: [Action] = []
                while state.head < state.order.count, state.order[state.head].deadline <= now {
                    if let action = state.actions.removeValue(forKey: state.order[state.head].id) {
                        due.append(action)
                    }
                    state.head += 1
                }
                state.trim()
                return due
            }
            for action in due { action() }
        }
    }
}
