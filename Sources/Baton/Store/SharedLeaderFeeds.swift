import Synchronization

/// One change feed per key, shared by every subscriber of that key in one store: a store whose feed reads the
/// store (polling, or a read after every wake-up) then reads once per change or poll however many electors of
/// the process follow the key, instead of once per elector.
///
/// Each subscriber's sequence behaves as its own ``LeaseStore/changes(key:)`` would: it starts with the leader as
/// last observed (at once when the key's feed already runs, else after its first read), then gets each change.
/// It ends with the feed's error when the feed fails (the next subscription starts a new feed), and the feed stops
/// when its last subscriber stops.
@_spi(BatonStoreKit) public final class SharedLeaderFeeds: Sendable {
    private struct Feed {
        var subscribers: [Int: LeaderChanges.Continuation] = [:]
        /// The last observation, once there is one.
        var latest: LeaderInfo??
        var task: Task<Void, Never>?
        /// Counts the feeds started for the key, so a stale feed's end does not touch its successor.
        var generation: Int
    }

    private struct State {
        var feeds: [String: Feed] = [:]
        var nextID = 0
        var generations = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// A new subscriber's sequence of leader observations for `key`; `make` makes the key's one feed (for example
    /// with ``LeaderChangeFeed``) when none runs.
    public func subscribe(_ key: String, make: () -> LeaderChanges) -> LeaderChanges {
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state -> Int in
            let id = state.nextID
            state.nextID += 1
            if state.feeds[key] == nil {
                state.generations += 1
                state.feeds[key] = Feed(generation: state.generations)
            }
            var feed = state.feeds[key]!
            feed.subscribers[id] = continuation
            if let latest = feed.latest { continuation.yield(latest) }
            if feed.task == nil { feed.task = start(key, make(), generation: feed.generation) }
            state.feeds[key] = feed
            return id
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(key, id) }
        return stream
    }

    /// Runs the key's feed, handing each observation to every subscriber (under the lock, so in order).
    private func start(_ key: String, _ changes: LeaderChanges, generation: Int) -> Task<Void, Never> {
        Task { [weak self] in
            var failure: (any Error)?
            do {
                for try await info in changes {
                    self?.state.withLock { state in
                        guard var feed = state.feeds[key], feed.generation == generation else { return }
                        feed.latest = .some(info)
                        state.feeds[key] = feed
                        for subscriber in feed.subscribers.values { subscriber.yield(info) }
                    }
                }
            } catch {
                failure = error
            }
            // The feed ended: its subscribers end with it, and the next subscription starts a new one.
            let ended = self?.state.withLock { state -> [LeaderChanges.Continuation] in
                guard let feed = state.feeds[key], feed.generation == generation else { return [] }
                state.feeds[key] = nil
                return Array(feed.subscribers.values)
            }
            for subscriber in ended ?? [] { subscriber.finish(throwing: failure) }
        }
    }

    private func unsubscribe(_ key: String, _ id: Int) {
        let idle = state.withLock { state -> Task<Void, Never>? in
            guard var feed = state.feeds[key], feed.subscribers.removeValue(forKey: id) != nil else { return nil }
            if feed.subscribers.isEmpty {
                state.feeds[key] = nil
                return feed.task
            }
            state.feeds[key] = feed
            return nil
        }
        idle?.cancel()
    }
}
