import Synchronization

/// Bookkeeping for tasks suspended on continuations, kept inside a caller's `Mutex`-protected state.
///
/// A parked wait goes through three steps, each under the owner's lock: ``reserve()`` an id (before
/// `withTaskCancellationHandler`), ``park(_:tag:continuation:)`` once the continuation exists, and at the
/// end ``remove(_:)`` (whoever resumes it) or ``cancel(_:)`` (the cancellation handler). The handler may run
/// before the continuation is parked; ``cancel(_:)`` then remembers the id so that ``park(_:tag:continuation:)``
/// refuses it, and the waiting task resumes itself with `CancellationError` instead of hanging.
struct Parking<Tag> {
    /// A parked task: what it waits for, and how to resume it.
    struct Entry {
        var tag: Tag
        var continuation: CheckedContinuation<Void, any Error>
    }

    private var nextID: UInt64 = 0
    private var reserved: Set<UInt64> = []
    private var cancelledEarly: Set<UInt64> = []
    /// The parked tasks by id.
    private(set) var entries: [UInt64: Entry] = [:]

    /// The number of parked tasks.
    var count: Int { entries.count }

    /// A new id for a task about to park.
    mutating func reserve() -> UInt64 {
        let id = nextID
        nextID += 1
        reserved.insert(id)
        return id
    }

    /// Parks the continuation under `id`. Returns false if the task was cancelled before it could park; the
    /// caller must then resume `continuation` with `CancellationError` itself.
    mutating func park(_ id: UInt64, tag: Tag, continuation: CheckedContinuation<Void, any Error>) -> Bool {
        reserved.remove(id)
        if cancelledEarly.remove(id) != nil { return false }
        entries[id] = Entry(tag: tag, continuation: continuation)
        return true
    }

    /// Forgets a reserved id that will not park (its wait ended before it began). Returns false if the task
    /// was cancelled meanwhile.
    mutating func unreserve(_ id: UInt64) -> Bool {
        reserved.remove(id)
        return cancelledEarly.remove(id) == nil
    }

    /// Called from the cancellation handler: removes and returns the parked continuation, or, if the task has
    /// not parked yet, remembers that it was cancelled. Returns nil if there is nothing to resume now.
    mutating func cancel(_ id: UInt64) -> CheckedContinuation<Void, any Error>? {
        if let entry = entries.removeValue(forKey: id) { return entry.continuation }
        if reserved.contains(id) { cancelledEarly.insert(id) }
        return nil
    }

    /// Removes and returns the parked tasks whose tag satisfies `predicate`.
    mutating func take(where predicate: (Tag) -> Bool) -> [(id: UInt64, entry: Entry)] {
        let chosen = entries.filter { predicate($0.value.tag) }
        for id in chosen.keys { entries[id] = nil }
        return chosen.map { (id: $0.key, entry: $0.value) }
    }

    /// Removes and returns every parked task.
    mutating func takeAll() -> [Entry] {
        defer { entries = [:] }
        return Array(entries.values)
    }
}

/// A task that can be cancelled before it is started: cancelling first makes ``start(_:)`` start it cancelled.
final class TaskHandle: Sendable {
    private struct State {
        var task: Task<Void, Never>?
        var cancelled = false
    }

    private let state = Mutex(State())

    /// Starts `operation` in a new task (cancelled at once if ``cancel()`` came first).
    func start(_ operation: @escaping @Sendable () async -> Void) {
        let task = Task(operation: operation)
        let cancelled = state.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelled { task.cancel() }
    }

    /// Cancels the task, now or as soon as it starts.
    func cancel() {
        let task = state.withLock { state in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }
}
