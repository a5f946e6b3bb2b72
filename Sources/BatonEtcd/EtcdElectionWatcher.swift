@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

/// One watch and one reader per key and store, shared by every ``EtcdLeaseStore/changes(key:)`` subscriber of
/// the key: a change is read once per store, not once per subscriber, and waiting candidates of this store can be
/// told "not yet" from the latest snapshot without asking etcd again.
///
/// A batch of events that only deletes candidate keys, or rewrites known ones on the same lease, needs no read:
/// applied to a snapshot that was read at a revision below them and has seen no event since, it gives the
/// election exactly (create revisions only rise, so no candidate can appear ahead of the ones left). A rewrite of
/// a waiting candidate's key on its own lease means it took the lead or was handed it (Baton writes a waiting
/// candidate's key again only then). That is a handover: the successor hears of it one round trip sooner.
final class EtcdElectionWatcher: Sendable {
    typealias Snapshot = Result<[EtcdLeaseStore.Candidate], any Error>

    private struct State {
        var subscribers: [Int: AsyncStream<Snapshot>.Continuation] = [:]
        var nextID = 0
        var latest: [EtcdLeaseStore.Candidate]?
        /// The store revision `latest` stands for.
        var latestRevision: Int64 = 0
        /// Counts the watch's events (and new subscriptions and watch restarts); a snapshot is fresh while the
        /// count is what it was when its read began.
        var generation = 0
        var latestGeneration: Int?
        var watching = false

        /// The latest snapshot if no change was seen since its read began and the watch is running, else nil.
        var fresh: [EtcdLeaseStore.Candidate]? {
            watching && latestGeneration == generation ? latest : nil
        }
    }

    private let state = Mutex(State())
    private let client: EtcdClient
    private let prefix: Data
    private let clock: BatonClock
    private let read: @Sendable () async throws -> (election: [EtcdLeaseStore.Candidate], revision: Int64)
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// A watcher of `prefix`, which ``run()`` watches; `read` reads the election after every change, and
    /// `clock` times the pauses before a failed watch is set up again.
    init(
        client: EtcdClient,
        prefix: Data,
        clock: BatonClock,
        read: @escaping @Sendable () async throws -> (election: [EtcdLeaseStore.Candidate], revision: Int64)
    ) {
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self.read = read
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Watches the prefix and reads the election after every change until ``stop()`` or cancellation (the
    /// store runs it as a child task of its `run()`); then finishes every subscriber's stream, with `endError`
    /// as the last snapshot when the store stopped.
    func run(endError: @escaping @Sendable () -> (any Error)?) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.watch() }
            for await _ in wakes {
                let generation = self.state.withLock { $0.generation }
                do {
                    let (election, revision) = try await read()
                    self.state.withLock { state in
                        state.latest = election
                        state.latestRevision = revision
                        state.latestGeneration = generation
                        Self.publish(.success(election), in: state)
                    }
                } catch {
                    self.state.withLock { Self.publish(.failure(error), in: $0) }
                }
            }
            group.cancelAll()
        }
        let error = endError()
        let subscribers = state.withLock { state in
            state.watching = false
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers {
            if let error { subscriber.yield(.failure(error)) }
            subscriber.finish()
        }
    }

    /// The watch, set up again after each failure (with a pause that grows while it keeps failing), until the
    /// task is cancelled or the client closed.
    private func watch() async {
        var failures = 0
        while !Task.isCancelled, !client.isClosed {
            let started = clock.now()
            do {
                try await EtcdLeaseStore.watch(client, prefix: prefix) { answer in
                    if !self.apply(answer) { self.wake.yield() }
                }
            } catch {
                state.withLock { state in
                    state.watching = false
                    state.generation += 1
                }
                if Task.isCancelled || client.isClosed { break }
                // Read again, so a change during the gap is not missed (or the read's error ends the feeds); a
                // watch that ran for a while before failing starts the backoff afresh.
                wake.yield()
                failures = clock.now() - started > .seconds(5) ? 1 : failures + 1
                try? await clock.sleep(for: .milliseconds(min(2000, 50 * (1 << min(failures, 6)))))
            }
        }
        wake.finish()
    }

    /// Counts a watch answer; when it only deletes candidates of the fresh snapshot or rewrites them on their own
    /// leases, keeps the election after it as the fresh snapshot, tells the subscribers and returns true, else
    /// returns false: the election must be read.
    private func apply(_ answer: Etcdserverpb_WatchResponse) -> Bool {
        state.withLock { state in
            let fresh = state.fresh
            state.watching = true
            state.generation += 1
            guard var election = fresh, !answer.events.isEmpty else { return false }
            for event in answer.events {
                guard event.kv.modRevision > state.latestRevision else { return false }
                switch event.type {
                case .delete:
                    election.removeAll { $0.key == event.kv.key }
                case .put:
                    guard
                        let index = election.firstIndex(where: {
                            $0.key == event.kv.key && $0.revision == event.kv.createRevision
                                && $0.lease == event.kv.lease
                        })
                    else { return false }
                    election[index].waiting = false
                    election[index].value = String(decoding: event.kv.value, as: UTF8.self)
                default:
                    return false
                }
            }
            state.latest = election
            state.latestRevision = answer.events.map(\.kv.modRevision).max()!
            state.latestGeneration = state.generation
            Self.publish(.success(election), in: state)
            return true
        }
    }

    /// Yields `snapshot` to every subscriber, under the state's lock: snapshots reach subscribers in the order
    /// they were taken (a yield never waits, and calls back into nothing here).
    private static func publish(_ snapshot: Snapshot, in state: State) {
        for subscriber in state.subscribers.values { subscriber.yield(snapshot) }
    }

    /// A new subscriber: its stream gets a snapshot read after this call, then one after every change.
    func subscribe() -> (id: Int, snapshots: AsyncStream<Snapshot>) {
        let (snapshots, continuation) = AsyncStream<Snapshot>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = continuation
            state.generation += 1
            return id
        }
        wake.yield()
        return (id, snapshots)
    }

    /// Tells every subscriber the fresh snapshot again (after a change to how this store reports it, such as a
    /// waiting candidate of this store taking a key handed over to it), or reads the election again if no
    /// snapshot is fresh.
    func republish() {
        let published = state.withLock { state -> Bool in
            guard let fresh = state.fresh else {
                state.generation += 1
                return false
            }
            Self.publish(.success(fresh), in: state)
            return true
        }
        if !published { wake.yield() }
    }

    /// Removes a subscriber and finishes its stream.
    func unsubscribe(_ id: Int) {
        let subscriber = state.withLock { $0.subscribers.removeValue(forKey: id) }
        subscriber?.finish()
    }

    /// Whether no one subscribes.
    var isIdle: Bool { state.withLock { $0.subscribers.isEmpty } }

    /// The latest snapshot if no change was seen since its read began and the watch is running, else nil.
    var freshSnapshot: [EtcdLeaseStore.Candidate]? {
        state.withLock { $0.fresh }
    }

    /// Ends ``run()``: the watch stops and the subscribers' streams finish.
    func stop() {
        wake.finish()
    }
}
