import Synchronization

/// Wake-up signals per key, for stores to build ``LeaseStore/changes(key:)`` on.
///
/// A store calls ``notify(_:)`` when it knows a key changed (a write in this process, a file-change
/// notification, a pub/sub message); each subscriber's handler is then called. Signals carry no data: the
/// subscriber reads the store again. Nothing ever blocks, and no task is kept per subscriber: a subscription is a
/// handler in a table.
@_spi(BatonStoreKit) public final class ChangeSignals: Sendable {
    /// What a subscription's handler is told.
    public enum Signal: Sendable {
        /// The key may have changed: read it again.
        case changed
        /// No more signals will come (the store closed). Sent once, last.
        case ended
    }

    /// One subscriber's place in the table. Signals that arrive before ``start(_:)`` are kept (coalesced to one)
    /// and handed over when it is called, so subscribing before the first read of the store misses nothing.
    public final class Subscription: Sendable {
        private struct State {
            var handler: (@Sendable (Signal) -> Void)?
            var changedEarly = false
            var endedEarly = false
            var cancelled = false
        }

        private let state = Mutex(State())
        private let cancellation: @Sendable () -> Void

        fileprivate init(cancellation: @escaping @Sendable () -> Void) {
            self.cancellation = cancellation
        }

        /// Sets the handler, and calls it at once for a signal that came before. Called once.
        public func start(_ handler: @escaping @Sendable (Signal) -> Void) {
            let (changed, ended) = state.withLock { state -> (Bool, Bool) in
                guard !state.cancelled else { return (false, false) }
                state.handler = handler
                return (state.changedEarly, state.endedEarly)
            }
            if changed { handler(.changed) }
            if ended { handler(.ended) }
        }

        /// Takes the subscription out of the table; its handler is not called again (except by a signal already
        /// being delivered).
        public func cancel() {
            let first = state.withLock { state -> Bool in
                defer {
                    state.cancelled = true
                    state.handler = nil
                }
                return !state.cancelled
            }
            if first { cancellation() }
        }

        fileprivate func deliver(_ signal: Signal) {
            let handler = state.withLock { state -> (@Sendable (Signal) -> Void)? in
                if state.handler == nil && !state.cancelled {
                    switch signal {
                    case .changed: state.changedEarly = true
                    case .ended: state.endedEarly = true
                    }
                }
                return state.handler
            }
            handler?(signal)
        }
    }

    private struct State {
        var nextID = 0
        var subscribers: [String: [Int: Subscription]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// A new subscription to `key`: its handler is called after each ``notify(_:)`` of `key` (or
    /// ``notifyAll()``). Subscribe before reading the store, so no change between the read and the subscription
    /// is missed; cancel the subscription when done.
    public func subscribe(_ key: String) -> Subscription {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let subscription = Subscription { [weak self] in
            self?.state.withLock { state in
                state.subscribers[key]?[id] = nil
                if state.subscribers[key]?.isEmpty == true { state.subscribers[key] = nil }
            }
        }
        state.withLock { $0.subscribers[key, default: [:]][id] = subscription }
        return subscription
    }

    /// The keys that have subscribers now.
    public var subscribedKeys: [String] {
        state.withLock { Array($0.subscribers.keys) }
    }

    /// Wakes every subscriber of `key`.
    public func notify(_ key: String) {
        let subscriptions = state.withLock { Array(($0.subscribers[key] ?? [:]).values) }
        for subscription in subscriptions { subscription.deliver(.changed) }
    }

    /// Wakes every subscriber of every key.
    public func notifyAll() {
        let subscriptions = state.withLock { $0.subscribers.values.flatMap(\.values) }
        for subscription in subscriptions { subscription.deliver(.changed) }
    }

    /// Ends every subscription.
    public func finishAll() {
        let subscriptions = state.withLock { state in
            defer { state.subscribers = [:] }
            return state.subscribers.values.flatMap(\.values)
        }
        for subscription in subscriptions { subscription.deliver(.ended) }
    }
}
