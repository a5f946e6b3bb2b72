import Synchronization

/// Wake-up signals per key, for stores to build ``LeaseStore/changes(key:)`` on.
///
/// A store calls ``notify(_:)`` when it knows a key changed (a write in this process, a file-change
/// notification, a pub/sub message); each subscriber's stream then yields once. Signals carry no data: the
/// subscriber reads the store again. Signals to a slow subscriber are coalesced, and nothing ever blocks.
@_spi(BatonStoreKit) public final class ChangeSignals: Sendable {
    private struct State {
        var nextID = 0
        var subscribers: [String: [Int: AsyncStream<Void>.Continuation]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// A stream that yields once after each ``notify(_:)`` of `key` (or ``notifyAll()``), coalescing bursts.
    /// Subscribe before reading the store, so no change between the read and the subscription is missed.
    public func subscribe(_ key: String) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[key, default: [:]][id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.subscribers[key]?[id] = nil
                if state.subscribers[key]?.isEmpty == true { state.subscribers[key] = nil }
            }
        }
        return stream
    }

    /// The keys that have subscribers now.
    public var subscribedKeys: [String] {
        state.withLock { Array($0.subscribers.keys) }
    }

    /// Wakes every subscriber of `key`.
    public func notify(_ key: String) {
        let continuations = state.withLock { Array(($0.subscribers[key] ?? [:]).values) }
        for continuation in continuations { continuation.yield() }
    }

    /// Wakes every subscriber of every key.
    public func notifyAll() {
        let continuations = state.withLock { $0.subscribers.values.flatMap(\.values) }
        for continuation in continuations { continuation.yield() }
    }

    /// Ends every subscription.
    public func finishAll() {
        let continuations = state.withLock { state in
            defer { state.subscribers = [:] }
            return state.subscribers.values.flatMap(\.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
