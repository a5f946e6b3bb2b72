@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

extension EtcdLeaseStore {
    // MARK: Changes

    /// Leader observations for `key` from this store's watch of the key (one per key, shared by its
    /// subscribers), run as work of the store's `run()`.
    /// - Throws: ``Baton/BatonError`` `storeUnavailable` once the store is closing or closed.
    public func changes(key: String) throws -> LeaderChanges {
        if lifecycle.isStopped { throw EtcdLifecycle.stopped }
        let lifecycle = self.lifecycle
        let (watcher, id, snapshots, isNew) = state.withLock { state in
            let existing = state.watchers[key]
            let watcher =
                existing
                ?? EtcdElectionWatcher(client: client, prefix: EtcdKeyLayout.electionPrefix(key), clock: clock) {
                    [weak self] in
                    guard let self else { throw EtcdLifecycle.stopped }
                    return try await self.readElectionAndRevision(key)
                }
            state.watchers[key] = watcher
            // Subscribing under the store's lock: an idle watcher is removed under the same lock.
            let (id, snapshots) = watcher.subscribe()
            return (watcher, id, snapshots, existing == nil)
        }
        if isNew {
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
        return Self.feed(
            snapshots,
            spawn: { lifecycle.spawn($0) },
            waitingHere: { [weak self] lease in
                self?.state.withLock { $0.machine.isWaiting(key: key, lease: lease) } ?? false
            },
            onTermination: { [weak self] in
                watcher.unsubscribe(id)
                let idle =
                    self?.state.withLock { state -> Bool in
                        guard state.watchers[key] === watcher, watcher.isIdle else { return false }
                        state.watchers[key] = nil
                        return true
                    } ?? true
                if idle { watcher.stop() }
            }
        )
    }

    /// The change feed of one subscriber: yields the leader of each snapshot when it differs from the last one
    /// yielded. One difference from a plain leader feed: when the queue's head is a candidate that has not taken
    /// the lead yet, the feed yields nil again each time that head is a different candidate, so every waiting
    /// elector hears "no leader" once per handover and tries (only the head wins). Without it, a consumer that
    /// missed the short term between two heads would wait forever.
    ///
    /// A head this store knows as one of its own waiting candidates counts as waiting even when the leader before
    /// it marked it leading on release: its holder has not taken the term yet (`waitingHere`), and hearing "no
    /// leader" is what makes it acquire.
    ///
    /// `spawn` runs the feed's work (the store's lifecycle: a child task of its `run()`); when it cannot (the
    /// store is closing), the feed ends with `storeUnavailable`. `onTermination` runs when the subscriber stops
    /// (or the feed ends).
    static func feed(
        _ snapshots: AsyncStream<EtcdElectionWatcher.Snapshot>,
        spawn: (@escaping EtcdLifecycle.Job) -> Bool,
        waitingHere: @escaping @Sendable (Int64) -> Bool = { _ in false },
        onTermination: @escaping @Sendable () -> Void = {}
    ) -> LeaderChanges {
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let spawned = spawn {
            var last: (leader: LeaderInfo?, waitingHead: Int64?)?
            for await snapshot in snapshots {
                let election: [Candidate]
                switch snapshot {
                case .success(let read): election = read
                case .failure(let error):
                    continuation.finish(throwing: error)
                    return
                }
                let headWaitsHere = election.first?.lease.map(waitingHere) ?? false
                let current = headWaitsHere ? nil : Self.leader(of: election)
                let waitingHead = current == nil ? election.first?.revision : nil
                let changed: Bool
                if let last {
                    changed =
                        (current == nil) != (last.leader == nil)
                        || (current.map { !$0.isSameTerm(as: last.leader) } ?? false)
                        || (current == nil && waitingHead != last.waitingHead)
                } else {
                    changed = true
                }
                if changed {
                    last = (current, waitingHead)
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
}
