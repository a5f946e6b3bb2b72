@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

extension EtcdLeaseStore {
    // MARK: Changes

    /// Leader observations for `key` from this store's watch of the key (one per key, shared by its
    /// subscribers), run as work of the store's `run()`: the head of the key's queue (see ``feed(_:spawn:onTermination:)``).
    /// - Throws: ``Baton/BatonError`` `storeUnavailable` once the store is closing or closed.
    public func changes(key: String) throws -> LeaderChanges {
        var snapshots: AsyncStream<EtcdElectionWatcher.Snapshot>?
        let (watcher, id) = try watching(key) { watcher in
            let (id, stream) = watcher.subscribe()
            snapshots = stream
            return id
        }
        let lifecycle = self.lifecycle
        return Self.feed(
            snapshots!,
            spawn: { lifecycle.spawn($0) },
            onTermination: { [weak self] in self?.unwatch(key, watcher, id) ?? watcher.stop() }
        )
    }

    /// Observations of `key` from this store's watch of the key, told to `observer` by the watch itself (no task
    /// per observer): the same heads of the queue as ``changes(key:)``.
    /// - Throws: ``Baton/BatonError`` `storeUnavailable` once the store is closing or closed.
    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        let (watcher, id) = try watching(key) { $0.subscribe(observer) }
        return ChangeObservation { [weak self] in self?.unwatch(key, watcher, id) ?? watcher.stop() }
    }

    /// The watcher of `key` (made and started as work of the store's `run()` if there is none), with a subscriber
    /// added by `subscribe` under the store's lock (an idle watcher is removed under the same lock).
    func watching(
        _ key: String,
        seed: (election: [Candidate], revision: Int64)? = nil,
        subscribe: (EtcdElectionWatcher) -> Int
    ) throws
        -> (EtcdElectionWatcher, Int)
    {
        if lifecycle.isStopped { throw EtcdLifecycle.stopped }
        let lifecycle = self.lifecycle
        let (watcher, id, isNew) = state.withLock { state in
            let existing = state.watchers[key]
            let watcher =
                existing
                ?? EtcdElectionWatcher(client: client, prefix: EtcdKeyLayout.electionPrefix(key), clock: clock) {
                    [weak self] in
                    guard let self else { throw EtcdLifecycle.stopped }
                    return try await self.readElectionAndRevision(key)
                }
            state.watchers[key] = watcher
            return (watcher, subscribe(watcher), existing == nil)
        }
        if isNew {
            if let seed { watcher.seed(seed.election, revision: seed.revision) }
            let started = lifecycle.spawn {
                await watcher.run { lifecycle.isStopped ? EtcdLifecycle.stopped : nil }
            }
            if !started {
                // The store began closing meanwhile: nothing would ever run the watch.
                state.withLock { state in
                    if state.watchers[key] === watcher { state.watchers[key] = nil }
                }
                watcher.unsubscribe(id)
                throw EtcdLifecycle.stopped
            }
        }
        return (watcher, id)
    }

    /// A subscriber of `key`'s watcher leaves; the watch stops when it was the last.
    func unwatch(_ key: String, _ watcher: EtcdElectionWatcher, _ id: Int) {
        watcher.unsubscribe(id)
        let idle = state.withLock { state -> Bool in
            guard state.watchers[key] === watcher, watcher.isIdle else { return false }
            state.watchers[key] = nil
            return true
        }
        if idle { watcher.stop() }
    }

    /// The change feed of one subscriber: yields the head of the queue of each snapshot when it differs from the
    /// last one yielded (nil for an empty queue). The head is reported even before it has taken the lead: it is
    /// the next leader, and only its holder may take the key, so only that holder's elector (or long poll) wakes
    /// up and acquires — the others, seeing someone else named, keep waiting. A release wakes one candidate, not
    /// every candidate in the queue.
    ///
    /// `spawn` runs the feed's work (the store's lifecycle: a child task of its `run()`); when it cannot (the
    /// store is closing), the feed ends with `storeUnavailable`. `onTermination` runs when the subscriber stops
    /// (or the feed ends).
    static func feed(
        _ snapshots: AsyncStream<EtcdElectionWatcher.Snapshot>,
        spawn: (@escaping EtcdLifecycle.Job) -> Bool,
        onTermination: @escaping @Sendable () -> Void = {}
    ) -> LeaderChanges {
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let spawned = spawn {
            var last: LeaderInfo??
            for await snapshot in snapshots {
                let election: [Candidate]
                switch snapshot {
                case .success(let read): election = read
                case .failure(let error):
                    continuation.finish(throwing: error)
                    return
                }
                let current = Self.head(of: election)
                if Self.isChange(to: current, after: last) {
                    last = .some(current)
                    continuation.yield(current)
                }
            }
            // Cancelled: the store's run() ended.
            continuation.finish(throwing: Task.isCancelled ? EtcdLifecycle.stopped : nil)
        }
        // The subscriber's end unsubscribes, which finishes `snapshots` and so the work above.
        continuation.onTermination = { _ in onTermination() }
        if !spawned { continuation.finish(throwing: EtcdLifecycle.stopped) }
        return stream
    }

    /// What a change feed reports of an election: the head of its queue (nil when it is empty).
    static func head(of election: [Candidate]) -> LeaderInfo? {
        election.isEmpty ? nil : leaderOrHead(of: election)
    }

    /// Whether `current` is news to a subscriber last told `last` (nil: nothing yet): another term, or a change
    /// between someone and no one.
    static func isChange(to current: LeaderInfo?, after last: LeaderInfo??) -> Bool {
        guard let last else { return true }
        return (current == nil) != (last == nil) || (current.map { !$0.isSameTerm(as: last) } ?? false)
    }
}
