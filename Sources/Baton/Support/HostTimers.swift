import Synchronization

/// Timers on the host's continuous clock, all served by one task: setting one is a heap insertion under a lock,
/// with no task and no system timer of its own.
///
/// The serving task sleeps until the earliest timer, runs every action that is due when it wakes, and sleeps
/// again; it ends when no timer is left, and the next ``schedule(at:_:)`` starts a new one. A timer set earlier
/// than the one slept for replaces the serving task with one that sleeps until the new time. Actions run on that
/// task, so they must be short (hand the tick on, as the elector does, and return).
///
/// Thousands of electors in one process each keep a few timers at any moment (the next renew, the request's
/// timeout, the term's deadline): one task for all of them instead of one sleeping task each.
@_spi(BatonStoreKit) public final class HostTimers: Sendable {
    public typealias Action = @Sendable () -> Void
    public typealias Instant = ContinuousClock.Instant

    /// The process's timers.
    public static let shared = HostTimers()

    private struct Entry {
        var deadline: Instant
        var id: UInt64
    }

    private struct State {
        /// A binary min-heap of the set timers by deadline (entries whose action is gone are skipped when popped).
        var heap: [Entry] = []
        var actions: [UInt64: Action] = [:]
        var nextID: UInt64 = 0
        /// The serving task, the deadline it sleeps until and its generation (a replaced task ends on its own).
        var server: Task<Void, Never>?
        var serving: Instant?
        var generation: UInt64 = 0

        mutating func push(_ entry: Entry) {
            heap.append(entry)
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard heap[child].deadline < heap[parent].deadline else { break }
                heap.swapAt(child, parent)
                child = parent
            }
        }

        mutating func popFirst() -> Entry? {
            guard let first = heap.first else { return nil }
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var parent = 0
                while true {
                    let left = parent * 2 + 1
                    let right = left + 1
                    var smallest = parent
                    if left < heap.count, heap[left].deadline < heap[smallest].deadline { smallest = left }
                    if right < heap.count, heap[right].deadline < heap[smallest].deadline { smallest = right }
                    if smallest == parent { break }
                    heap.swapAt(parent, smallest)
                    parent = smallest
                }
            }
            return first
        }

        /// The earliest deadline of a timer still set, dropping the cancelled ones ahead of it.
        mutating func earliest() -> Instant? {
            while let first = heap.first {
                if actions[first.id] != nil { return first.deadline }
                _ = popFirst()
            }
            return nil
        }
    }

    private let state = Mutex(State())

    /// Runs `action` once the host's continuous clock reaches `deadline`, unless cancelled first.
    /// - Returns: the timer's id, for ``cancel(_:)``.
    @discardableResult
    public func schedule(at deadline: Instant, _ action: @escaping Action) -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            let id = state.nextID
            state.actions[id] = action
            state.push(Entry(deadline: deadline, id: id))
            if let serving = state.serving, serving <= deadline { return id }
            // No task serves the timers, or it sleeps past this one: a new task takes over.
            state.server?.cancel()
            state.generation += 1
            state.serving = deadline
            let generation = state.generation
            state.server = Task { await self.serve(generation) }
            return id
        }
    }

    /// Makes sure the action of timer `id` does not run, if it has not run yet.
    public func cancel(_ id: UInt64) {
        _ = state.withLock { $0.actions.removeValue(forKey: id) }
    }

    /// The number of timers set and not yet run or cancelled.
    public var count: Int { state.withLock { $0.actions.count } }

    private func serve(_ generation: UInt64) async {
        let clock = ContinuousClock()
        while true {
            let (due, next) = state.withLock { state -> ([Action], Instant?) in
                guard state.generation == generation else { return ([], nil) }
                let now = clock.now
                var due: [Action] = []
                while let deadline = state.earliest(), deadline <= now, let entry = state.popFirst() {
                    if let action = state.actions.removeValue(forKey: entry.id) { due.append(action) }
                }
                let next = state.earliest()
                state.serving = next
                if next == nil { state.server = nil }
                return (due, next)
            }
            for action in due { action() }
            guard let next else { return }
            do {
                try await clock.sleep(until: next, tolerance: nil)
            } catch {
                // Replaced by a task serving an earlier timer.
                return
            }
        }
    }
}
