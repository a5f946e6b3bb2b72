import Logging
import Synchronization

/// Spreads the shards of a key evenly over the members taking part, and runs work per shard this member owns: sharded
/// leadership over a ``LeaseStore``.
///
/// ```swift
/// let orders = try ShardedElector(store: store, key: "orders", holder: "host-a", shards: 12)
/// try await orders.withShards { shard in
///     // Runs once per shard this member owns, cancelled when the shard moves to another member.
///     try await consumePartition(shard.index, fencingToken: shard.token)
/// }
/// ```
///
/// ## Shards
/// A sharded key of M shards has a key per shard (``shardKeys``), and owning a shard is a term of that key, led by
/// a ``LeaderElector``: so everything a single lease promises holds per shard — one owner at a time, the safety rule,
/// release after work, and a fencing token that rises with every term of the shard (``Shard/token``; tokens of
/// different shards are not comparable).
///
/// ## Members and the plan
/// Members announce themselves in the store's presence (group `KEY#members`, member `M:HOLDER`, heartbeated every
/// third of the ttl; a member that stops heartbeating is gone a ttl later). Every third of the ttl each member reads
/// the members and the shards' owners (one listing) and works out the same plan as every other member: each member
/// gets ⌊M/n⌋ or ⌈M/n⌉ shards, and no more shards move than an even spread needs (a joining member takes shards only
/// from members above their share; a leaving member's shards go to members below theirs). A member campaigns for
/// the shards the plan gives it and resigns the others. A shard that moves is handed over by the safety rule: the old
/// owner's work is cancelled, the shard released once it has returned, and the new owner — already waiting in the
/// shard's queue — is elected at once. A crashed member's shards move once its presence and its terms expire: within
/// about a ttl and a third.
///
/// Members that disagree for a moment (one has seen a join, another not yet) cannot both own a shard: ownership is
/// the shard's lease. They agree again at their next reading.
///
/// ## The number of shards is part of the key
/// A member that finds another number of shards announced is refused with ``BatonError`` `invalidArgument` (as a
/// semaphore's candidates are for the number of permits). The key itself is never leased: a ``LeaderElector`` and a
/// ``SemaphoreElector`` may use the same key name without meeting the shards.
public final class ShardedElector: Sendable {
    /// The store campaigned on.
    public let store: LeaseStore
    /// The sharded key.
    public let key: String
    /// This member's identity in the store, the same for every shard.
    public let holder: String
    /// The number of shards.
    public let shards: Int
    /// The configuration of every shard's elector; its ttl is also the members' presence ttl.
    public let configuration: ElectorConfiguration
    /// The key of each shard: `KEY#shard-0` … `KEY#shard-M-1`.
    public let shardKeys: [String]
    /// The presence group where members announce themselves and the number of shards.
    public let membersGroup: String

    let electors: [LeaderElector]
    let layout: ShardLayout
    let clock: BatonClock
    let logger: Logger

    /// The largest number of shards.
    public static let maxShards = ShardLayout.maxShards

    private struct State {
        var busy = false
        var stopped = false
        /// The shards whose work runs now.
        var owned: Set<Int> = []
        /// The shards with a runner (campaigning, working or leaving).
        var running: Set<Int> = []
        /// The first error a runner threw.
        var failure: (any Error)?
        var wake: AsyncStream<Void>.Continuation?
        var subscribers: [Int: AsyncStream<Set<Int>>.Continuation] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Creates a member.
    /// - Parameters:
    ///   - store: the store to campaign on.
    ///   - key: the sharded key (its shard keys and members group must be valid names: see ``shardKeys``).
    ///   - holder: this member's identity, unique among the members (default: `hostname:pid`).
    ///   - shards: the number of shards, 1–``maxShards``.
    ///   - configuration: ttl, renew interval, margin and the rest, for every shard; validated here.
    ///   - clock: the monotonic clock its timing runs on (default: the host's continuous clock; a
    ///     `ManualClock` in tests).
    ///   - logger: where the shards' electors log.
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key or holder, a number of shards out of range, or
    ///   a configuration whose values do not fit together.
    public init<C: Clock>(
        store: LeaseStore,
        key: String,
        holder: String = LeaderElector.defaultHolder,
        shards: Int,
        configuration: ElectorConfiguration = ElectorConfiguration(),
        clock: C = ContinuousClock(),
        logger: Logger = Logger(label: "baton.shards")
    ) throws where C.Duration == Duration {
        let layout = try ShardLayout(key: key, shards: shards)
        try layout.announcement.validate(holder: holder)
        var logger = logger
        logger[metadataKey: "baton.sharded"] = "\(key)"
        self.store = store
        self.key = key
        self.holder = holder
        self.shards = shards
        self.configuration = configuration
        self.shardKeys = layout.shardKeys
        self.membersGroup = layout.membersGroup
        self.layout = layout
        self.clock = BatonClock(clock)
        self.logger = logger
        self.electors = try layout.shardKeys.map { shardKey in
            try LeaderElector(
                store: store, key: shardKey, holder: holder, configuration: configuration, clock: clock,
                logger: logger)
        }
    }

    // MARK: Observing

    /// The shards whose work runs in this member now.
    public var owned: Set<Int> { state.withLock { $0.owned } }

    /// A new stream of the shards this member owns, from now on: the current set first, then each change (a shard's
    /// work starting, or having returned after the shard moved away). Each call makes an independent subscriber; one
    /// that does not read keeps only the newest set.
    public var ownership: AsyncStream<Set<Int>> {
        let (stream, continuation) = AsyncStream.makeStream(of: Set<Int>.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            state.nextID += 1
            state.subscribers[state.nextID] = continuation
            continuation.yield(state.owned)
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The owner of each shard according to the store (one listing), nil for a free shard.
    public func owners() async throws -> [LeaderInfo?] {
        try await layout.owners(on: store)
    }

    /// The members taking part now, as the store's presence has them, sorted.
    public func members() async throws -> [String] {
        try await layout.members(on: store)
    }

    // MARK: Working

    /// Takes part as a member until cancelled, running `body` for each shard this member owns.
    ///
    /// Announces the member, and from then on follows the plan (see "Members and the plan" above): for each shard
    /// the plan gives this member it campaigns and, once elected, calls `body` with the shard (pass ``Shard/token``
    /// to the resources the work writes to). When the shard moves away, or its term ends (lost, or its deadline
    /// passed without a renew), `body`'s task is cancelled and the shard released once it has returned. When `body`
    /// returns by itself, the shard is released too, and taken again at the next reading of the plan (a new term,
    /// with a higher token): loop inside `body` for work that goes on.
    ///
    /// Cancelling the caller's task ends every shard's work, releases the shards (so the other members take them
    /// at once) and withdraws the member. Store errors are retried, as an elector does.
    /// - Throws: the first error a `body` throws (other than `CancellationError` and ``BatonError`` `lost`), after
    ///   every shard's work has returned and the shards are released; ``BatonError`` `invalidArgument` if the key is
    ///   in use with another number of shards, or another ``withShards(_:)`` of this instance runs.
    public func withShards(_ body: @escaping @Sendable (Shard) async throws -> Void) async throws {
        try await participate { [self] index, elector, campaign in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await elector.run(campaign) }
                var failure: (any Error)?
                do {
                    let lease = try await elector.waitForLeadership(onlyWhileRunning: true)
                    setOwned(index, true)
                    do {
                        try await elector.work(in: lease) { lease in
                            try await body(Shard(key: self.key, index: index, lease: lease, elector: elector))
                        }
                    } catch {
                        setOwned(index, false)
                        throw error
                    }
                    setOwned(index, false)
                } catch is CancellationError {
                    // Resigned (moved away) before elected, or the member stops.
                } catch let error as BatonError where error.code == .lost {
                    // The term ended; the plan takes the shard again if it is still this member's.
                } catch {
                    failure = error
                }
                elector.resign()
                try await group.waitForAll()
                if let failure { throw failure }
            }
        }
    }

    /// Takes part as a member, calling `runShard` with each shard the plan gives this member, its elector and a
    /// campaign claimed for it (run it with ``LeaderElector/run(_:)``); a shard that moves away has its elector
    /// resigned, or with `end` given, `end` is called with it (and then it must end the shard's campaign). `runShard`
    /// returns when its campaign has ended; the shard is started again at the next reading of the plan if it is still
    /// this member's. Ends when the caller is cancelled or ``stop()`` is called (every shard ended and returned), or
    /// when a `runShard` throws (the others ended first).
    package func participate(
        end: (@Sendable (Int) -> Void)? = nil,
        _ runShard: @escaping @Sendable (Int, LeaderElector, Campaign) async throws -> Void
    ) async throws {
        let claimed = state.withLock { state in
            if state.busy { return false }
            state.busy = true
            state.stopped = false
            state.failure = nil
            return true
        }
        guard claimed else {
            throw BatonError.invalidArgument(
                "a member \(holder) of sharded key \(key) is already taking part; one runs at a time per instance")
        }
        defer { state.withLock { $0.busy = false } }
        try await layout.announcement.keep(
            on: store, holder: holder, ttl: configuration.ttl, clock: clock, logger: logger,
            stopped: { [self] in state.withLock { $0.stopped } },
            announce: { [layout, store, holder, configuration] in
                try await layout.announcement.announce(on: store, holder: holder, ttl: configuration.ttl)
            },
            { try await follow(runShard, end: end ?? { [electors] in electors[$0].resign() }) })
    }

    /// Ends ``participate(_:)`` (and ``withShards(_:)``): every shard resigns, and the member leaves once their work
    /// has returned. Also while the member's announcement is still retrying a store that cannot be reached.
    package func stop() {
        let wake = state.withLock { state in
            state.stopped = true
            return state.wake
        }
        wake?.yield()
    }

    /// Follows the plan until stopped, cancelled or failed.
    private func follow(
        _ runShard: @escaping @Sendable (Int, LeaderElector, Campaign) async throws -> Void,
        end: @escaping @Sendable (Int) -> Void
    ) async throws {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        state.withLock { $0.wake = wake }
        defer { state.withLock { $0.wake = nil } }
        // A reading of the plan every third of the ttl, and whenever a shard's runner ends.
        let ticker = Task { [clock, configuration] in
            while (try? await clock.sleep(for: configuration.ttl / 3)) != nil { wake.yield() }
        }
        defer { ticker.cancel() }
        await withTaskGroup(of: Void.self) { group in
            var desired: Set<Int> = []
            var iterator = wakes.makeAsyncIterator()
            while !Task.isCancelled {
                let (stopped, failed, running) = state.withLock { ($0.stopped, $0.failure != nil, $0.running) }
                if stopped || failed { break }
                if let planned = await plannedShards() { desired = planned }
                for index in desired.subtracting(running) {
                    let elector = electors[index]
                    guard let campaign = elector.claimCampaign() else { continue }
                    state.withLock { _ = $0.running.insert(index) }
                    group.addTask { [self] in
                        do {
                            try await runShard(index, elector, campaign)
                        } catch {
                            state.withLock { state in
                                if state.failure == nil { state.failure = error }
                            }
                        }
                        state.withLock { _ = $0.running.remove(index) }
                        wake.yield()
                    }
                }
                for index in running.subtracting(desired) { end(index) }
                // Nil once the caller is cancelled.
                guard await iterator.next() != nil else { break }
            }
            // Stopping: every shard ends, and is released once its work has returned. Each campaign was claimed
            // before its runner started, so a resignation is never lost.
            for index in state.withLock({ $0.running }) { end(index) }
            await group.waitForAll()
        }
        if let failure = state.withLock({ $0.failure }) { throw failure }
        if !state.withLock({ $0.stopped }) { try Task.checkCancellation() }
    }

    /// The shards the plan gives this member now, or nil if the store could not be read.
    private func plannedShards() async -> Set<Int>? {
        do {
            let members = try await layout.members(on: store)
            let owners = try await layout.owners(on: store)
            let plan = ShardPlan.assign(shards: shards, members: members + [holder], owners: owners.map { $0?.holder })
            return Set(plan.indices.filter { plan[$0] == holder })
        } catch {
            logger.warning("reading the members and owners failed", metadata: ["baton.error": "\(error)"])
            return nil
        }
    }

    private func setOwned(_ index: Int, _ owned: Bool) {
        state.withLock { state in
            if owned { state.owned.insert(index) } else { state.owned.remove(index) }
            for subscriber in state.subscribers.values { subscriber.yield(state.owned) }
        }
    }
}

/// A shard of a ``ShardedElector`` that this member owns: one term of the shard's key.
public struct Shard: Sendable {
    /// The sharded key.
    public let key: String
    /// The shard, 0 ..< shards.
    public let index: Int
    /// The shard's term: its key is the shard's key, its token rises with every term of the shard.
    public let lease: Lease
    let elector: LeaderElector

    /// The fencing token of this shard's term: hand it to the resource the work writes to, with the shard.
    public var token: FencingToken { lease.token }

    /// The time left in this shard's term on its elector's clock, live (every renew moves it on); nil once the term is
    /// over. Work that must stop before the shard can pass to another member reads it.
    public var timeLeft: Duration? { elector.timeLeft(in: lease.token) }
}
