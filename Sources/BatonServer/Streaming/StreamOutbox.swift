import Synchronization

/// What one event stream has yet to write, bounded, for one reader: the writing task takes items with ``next()``
/// while the store's feed, a keep-alive timer and graceful shutdown post them.
///
/// - At most `capacity` events wait. Posting to a full outbox drops the oldest waiting event, so the newest one
///   (the current leader) is always delivered, however slowly the client reads.
/// - A keep-alive is kept only while no event waits (an event keeps the stream alive as well), and never more than
///   one.
/// - ``finish(_:)`` ends the outbox: the events already waiting are delivered first, then the ending, then
///   nothing. The first ending wins; posts after it are ignored.
final class StreamOutbox<Event: Sendable, Ending: Sendable>: Sendable {
    /// What the writer takes next.
    enum Item: Sendable {
        case event(Event)
        case keepAlive
        case end(Ending)
    }

    private struct State: ~Copyable {
        var events: [Event] = []
        var keepAlive = false
        var ending: Ending?
        var delivered = false
        var waiter: CheckedContinuation<Item?, Never>?
        /// Events dropped because the outbox was full.
        var dropped = 0

        /// The item to hand out now, if any, updating the state.
        mutating func take() -> Item? {
            if !events.isEmpty { return .event(events.removeFirst()) }
            if let ending, !delivered {
                delivered = true
                return .end(ending)
            }
            if keepAlive, ending == nil {
                keepAlive = false
                return .keepAlive
            }
            return nil
        }
    }

    /// The most events that wait at once (at least 1).
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Adds an event; in a full outbox the oldest waiting event is dropped.
    func post(_ event: Event) {
        update { state in
            guard state.ending == nil else { return }
            if state.events.count >= capacity {
                state.events.removeFirst()
                state.dropped += 1
            }
            state.events.append(event)
            state.keepAlive = false
        }
    }

    /// Asks for a keep-alive, unless an event waits already.
    func postKeepAlive() {
        update { state in
            if state.events.isEmpty && state.ending == nil { state.keepAlive = true }
        }
    }

    /// Ends the outbox with `ending`, delivered after the events already waiting. Only the first call counts.
    func finish(_ ending: Ending) {
        update { state in
            if state.ending == nil { state.ending = ending }
        }
    }

    /// How many events were dropped so far because the outbox was full.
    var dropped: Int { state.withLock { $0.dropped } }

    /// The next item, waiting for one; nil once the ending has been delivered, or when the task is cancelled.
    func next() async -> Item? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Item?, Never>) in
                let ready = state.withLock { state -> Item?? in
                    if let item = state.take() { return .some(item) }
                    if state.delivered || Task.isCancelled { return .some(nil) }
                    precondition(state.waiter == nil, "StreamOutbox has one reader")
                    state.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Item?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Changes the state and hands the waiting reader its item, if there is one now (resumed outside the lock).
    private func update(_ change: (inout State) -> Void) {
        let (waiter, item) = state.withLock { state -> (CheckedContinuation<Item?, Never>?, Item?) in
            change(&state)
            guard let waiter = state.waiter, let item = state.take() else { return (nil, nil) }
            state.waiter = nil
            return (waiter, item)
        }
        if let waiter, let item { waiter.resume(returning: item) }
    }
}
