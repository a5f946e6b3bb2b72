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

    /// Where a subscriber gets its snapshots: a stream (``EtcdLeaseStore/changes(key:)``, whose feed task reads
    /// it), or an observer called with the head of the queue when it changes (``EtcdLeaseStore/observe(key:_:)``:
    /// no task per subscriber, so a release reaches 1,000 waiting electors of one process in one pass).
    enum Subscriber {
        case stream(AsyncStream<Snapshot>.Continuation)
        case observer(LeaderObserver)
        /// Keeps the watch running and is told nothing (see ``hold()``).
        case holder
    }

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        /// What each observer was last told (absent: nothing yet).
        var observed: [Int: LeaderInfo?] = [:]
        /// The holder each observer observes for (``ObserverHolder``), where known.
        var holders: [Int: String] = [:]
        /// Snapshots still to be told to the observers, in order, and whether a caller is telling them.
        var pending: [Snapshot] = []
        var draining = false
        var nextID = 0
        var latest: [EtcdLeaseStore.Candidate]?
        /// The store revision `latest` stands for.
        var latestRevision: Int64 = 0
        /// Counts the watch's events (and new subscriptions and watch restarts); a snapshot is fresh while the
        /// count is what it was when its read began.
        var generation = 0
        var latestGeneration: Int?
        var watching = false
        /// Where the next watch starts, when the watcher was given a snapshot (``seed(_:revision:)``) and has not
        /// started watching yet.
        var seededStart: Int64?
        /// Whether the watch under way started at a seeded snapshot's next revision and is not yet set up.
        var seededWatch = false
        /// How many times the election was read (for tests).
        var reads = 0

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
                let generation = self.state.withLock { state in
                    state.reads += 1
                    return state.generation
                }
                do {
                    let (election, revision) = try await read()
                    let drain = self.state.withLock { state in
                        state.latest = election
                        state.latestRevision = revision
                        state.latestGeneration = generation
                        return Self.publish(.success(election), in: &state)
                    }
                    if drain { self.drain() }
                } catch {
                    if self.state.withLock({ Self.publish(.failure(error), in: &$0) }) { self.drain() }
                }
            }
            group.cancelAll()
        }
        let error = endError()
        let subscribers = state.withLock { state in
            state.watching = false
            defer {
                state.subscribers = [:]
                state.observed = [:]
                state.holders = [:]
                state.pending = []
            }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers {
            switch subscriber {
            case .stream(let stream):
                if let error { stream.yield(.failure(error)) }
                stream.finish()
            case .observer(let observer):
                // The store's run() ended: the store is closing.
                observer(.ended(error ?? EtcdLifecycle.stopped))
            case .holder:
                break
            }
        }
    }

    /// The watch, set up again after each failure (with a pause that grows while it keeps failing), until the
    /// task is cancelled or the client closed.
    private func watch() async {
        var failures = 0
        while !Task.isCancelled, !client.isClosed {
            let started = clock.now()
            let startRevision = state.withLock { state -> Int64? in
                defer { state.seededStart = nil }
                state.seededWatch = state.seededStart != nil
                return state.seededStart
            }
            do {
                try await EtcdLeaseStore.watch(client, prefix: prefix, startRevision: startRevision) { answer in
                    if !self.apply(answer) { self.wake.yield() }
                }
            } catch {
                state.withLock { state in
                    state.watching = false
                    state.seededWatch = false
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
        var drain = false
        let applied = state.withLock { state -> Bool in
            if state.seededWatch, answer.created {
                // Set up from the seeded snapshot's next revision: every later change comes as an event, so the
                // snapshot is fresh without a read.
                state.seededWatch = false
                state.watching = true
                state.generation += 1
                state.latestGeneration = state.generation
                return true
            }
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
            drain = Self.publish(.success(election), in: &state)
            return true
        }
        if drain { self.drain() }
        return applied
    }

    /// Yields `snapshot` to every stream subscriber, under the state's lock: snapshots reach subscribers in the
    /// order they were taken (a yield never waits, and calls back into nothing here). For observers the snapshot
    /// is queued; returns true when the caller must tell them (``drain()``, after the lock), since no one else is.
    private static func publish(_ snapshot: Snapshot, in state: inout State) -> Bool {
        var observers = false
        for subscriber in state.subscribers.values {
            switch subscriber {
            case .stream(let stream): stream.yield(snapshot)
            case .observer: observers = true
            case .holder: break
            }
        }
        guard observers else { return false }
        state.pending.append(snapshot)
        if state.draining { return false }
        state.draining = true
        return true
    }

    /// Tells the observers the queued snapshots, one snapshot at a time and in order, outside the lock (an
    /// observer may call into the store). Only one caller drains at a time; snapshots queued meanwhile are told by
    /// it too.
    private func drain() {
        while true {
            let calls = state.withLock { state -> [(LeaderObserver, LeaderObservation)]? in
                guard !state.pending.isEmpty else {
                    state.draining = false
                    return nil
                }
                let snapshot = state.pending.removeFirst()
                var calls: [(holder: String?, value: (LeaderObserver, LeaderObservation))] = []
                var head: LeaderInfo?
                for (id, subscriber) in state.subscribers {
                    guard case .observer(let observer) = subscriber else { continue }
                    switch snapshot {
                    case .success(let election):
                        head = EtcdLeaseStore.head(of: election)
                        guard EtcdLeaseStore.isChange(to: head, after: state.observed[id]) else { continue }
                        state.observed[id] = .some(head)
                        calls.append((state.holders[id], (observer, .leader(head))))
                    case .failure(let error):
                        state.subscribers[id] = nil
                        state.observed[id] = nil
                        state.holders[id] = nil
                        calls.append((state.holders[id], (observer, .ended(error))))
                    }
                }
                // The head's own observer first: its acquire is what a release waits for.
                return ObserverHolder.leaderFirst(calls, leader: head?.holder)
            }
            guard let calls else { return }
            for (observer, observation) in calls { observer(observation) }
        }
    }

    /// Gives a watcher that has not started the election as of `revision`, known without a read (a candidate that
    /// took a free key is alone in it): its watch then starts at the next revision, and the snapshot is fresh as
    /// soon as the watch is set up.
    func seed(_ election: [EtcdLeaseStore.Candidate], revision: Int64) {
        state.withLock { state in
            guard !state.watching, state.latestGeneration == nil else { return }
            state.latest = election
            state.latestRevision = revision
            state.seededStart = revision + 1
        }
    }

    /// A new subscriber: its stream gets a snapshot read after this call, then one after every change.
    func subscribe() -> (id: Int, snapshots: AsyncStream<Snapshot>) {
        let (snapshots, continuation) = AsyncStream<Snapshot>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = add(.stream(continuation))
        return (id, snapshots)
    }

    /// A new observer: it is told the head of the queue of a snapshot read after this call, then every change of
    /// it, and how the watch ended.
    func subscribe(_ observer: @escaping LeaderObserver) -> Int {
        let id = add(.observer(observer))
        if let holder = ObserverHolder.current {
            state.withLock { state in
                if state.subscribers[id] != nil { state.holders[id] = holder }
            }
        }
        return id
    }

    /// Keeps the watch running, so that its snapshot stays fresh, without being told anything: a leader's store
    /// holds the watch of the key it leads, so that its release knows the queue without a read. Unlike a
    /// subscriber, a holder does not make the watcher read the election again. Ended by ``unsubscribe(_:)``.
    func hold() -> Int {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = .holder
            return id
        }
    }

    private func add(_ subscriber: Subscriber) -> Int {
        let id = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = subscriber
            state.generation += 1
            return id
        }
        wake.yield()
        return id
    }

    /// Tells every subscriber the fresh snapshot again (after a change to how this store reports it, such as a
    /// waiting candidate of this store taking a key handed over to it), or reads the election again if no
    /// snapshot is fresh.
    func republish() {
        let (published, drain) = state.withLock { state -> (Bool, Bool) in
            guard let fresh = state.fresh else {
                state.generation += 1
                return (false, false)
            }
            return (true, Self.publish(.success(fresh), in: &state))
        }
        if drain { self.drain() }
        if !published { wake.yield() }
    }

    /// Removes a subscriber and finishes its stream (an observer is told nothing more, but for a call already
    /// under way).
    func unsubscribe(_ id: Int) {
        let subscriber = state.withLock { state in
            state.observed[id] = nil
            state.holders[id] = nil
            return state.subscribers.removeValue(forKey: id)
        }
        if case .stream(let stream) = subscriber { stream.finish() }
    }

    /// Whether no one subscribes.
    var isIdle: Bool { state.withLock { $0.subscribers.isEmpty } }

    /// The latest snapshot if no change was seen since its read began and the watch is running, else nil.
    var freshSnapshot: [EtcdLeaseStore.Candidate]? {
        state.withLock { $0.fresh }
    }

    /// How many times the election was read (for tests).
    var reads: Int { state.withLock { $0.reads } }

    /// Ends ``run()``: the watch stops and the subscribers' streams finish.
    func stop() {
        wake.finish()
    }
}
