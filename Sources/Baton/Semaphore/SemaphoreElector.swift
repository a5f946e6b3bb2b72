import Foundation
import Logging
import Synchronization

/// Lets up to `permits` holders work under one key at a time: a semaphore over a ``LeaseStore``.
///
/// ```swift
/// let semaphore = try SemaphoreElector(store: store, key: "thumbnailer", holder: "host-a", permits: 3)
/// try await semaphore.withPermit { permit in
///     // At most 3 holders run this at once; this one holds slot `permit.slot`.
///     try await renderThumbnails(fencingToken: permit.token)
/// }
/// ```
///
/// ## Slots
/// A semaphore of `permits` has that many slots, and a holder holds one slot: a term of the slot's own key
/// (``slotKeys``), led by a ``LeaderElector``. Everything a single lease promises holds per slot: the safety rule,
/// release after work, the queue of waiting candidates, and a fencing token that rises with every term of the
/// slot (``Permit/token``; tokens of different slots are not comparable). A semaphore of 1 has one slot, the key
/// itself: it *is* an election, and excludes ``LeaderElector``s of the same key.
///
/// A waiting candidate campaigns for its preferred slot first (chosen from its holder name, so candidates spread
/// over the slots), and for every slot once that one is held. It keeps the first slot it is elected to and leaves
/// the others at once; a slot it won at the same moment is released without any work, to the next waiter.
///
/// ## The number of permits is part of the semaphore
/// Candidates of a semaphore announce its number of permits in the store's presence (group
/// `KEY#permits`, member `N:HOLDER`) for as long as they take part. A candidate that finds another number
/// announced there is refused with ``BatonError`` `invalidArgument`: two numbers at once would let more holders
/// work than either allows. It looks before it announces its own (so a refused candidate never disturbs a semaphore
/// in use) and again after (so of two that start together with different numbers, at least one sees the other). Once every candidate of the old number has gone (a ttl after its last heartbeat), the
/// key may be used with another number. A semaphore of more than 1 is also refused while its key is held as a
/// lease; a ``LeaderElector`` does not look for semaphores, so keep the two on different keys.
///
/// One ``withPermit(_:)`` runs at a time per instance (a second concurrent call is refused): give each concurrent
/// holder its own instance and holder name.
public final class SemaphoreElector: Sendable {
    /// The store campaigned on.
    public let store: LeaseStore
    /// The semaphore's key.
    public let key: String
    /// This candidate's identity in the store, the same for every slot.
    public let holder: String
    /// How many holders may work at once.
    public let permits: Int
    /// The configuration of every slot's elector.
    public let configuration: ElectorConfiguration
    /// The key of each slot: the semaphore's key for a semaphore of 1, else `KEY#0` … `KEY#N-1`.
    public let slotKeys: [String]
    /// The presence group where the semaphore's candidates announce its number of permits.
    public let permitsGroup: String

    let slots: [LeaderElector]
    let layout: SemaphoreLayout
    let clock: BatonClock
    let logger: Logger
    /// The slot campaigned for first.
    let preferredSlot: Int
    private let busy = Mutex(false)
    /// Set by ``stopChoosing()``.
    private let stopped = Mutex(false)

    /// The largest number of permits.
    public static let maxPermits = SemaphoreLayout.maxPermits

    /// Creates a candidate.
    /// - Parameters:
    ///   - store: the store to campaign on.
    ///   - key: the semaphore's key (its slot keys and permits group must be valid names: see ``slotKeys``).
    ///   - holder: this candidate's identity, unique among the candidates (default: `hostname:pid`).
    ///   - permits: how many holders may work at once, 1–``maxPermits``.
    ///   - configuration: ttl, renew interval, margin and the rest, for every slot; validated here.
    ///   - clock: the monotonic clock its timing runs on (default: the host's continuous clock; a
    ///     `ManualClock` in tests).
    ///   - logger: where the slots' electors log.
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key or holder, a number of permits out of range,
    ///   or a configuration whose values do not fit together.
    public init<C: Clock>(
        store: LeaseStore,
        key: String,
        holder: String = LeaderElector.defaultHolder,
        permits: Int,
        configuration: ElectorConfiguration = ElectorConfiguration(),
        clock: C = ContinuousClock(),
        logger: Logger = Logger(label: "baton.semaphore")
    ) throws where C.Duration == Duration {
        let layout = try SemaphoreLayout(key: key, permits: permits)
        try layout.validate(holder: holder)
        let slotKeys = layout.slotKeys
        let permitsGroup = layout.permitsGroup
        var logger = logger
        logger[metadataKey: "baton.semaphore"] = "\(key)"
        self.store = store
        self.key = key
        self.holder = holder
        self.permits = permits
        self.configuration = configuration
        self.slotKeys = slotKeys
        self.permitsGroup = permitsGroup
        self.clock = BatonClock(clock)
        self.logger = logger
        self.layout = layout
        self.slots = try slotKeys.map { slotKey in
            try LeaderElector(
                store: store, key: slotKey, holder: holder, configuration: configuration, clock: clock,
                logger: logger)
        }
        self.preferredSlot = layout.preferredSlot(of: holder)
    }

    // MARK: Observing

    /// The holder of each slot according to the store (one store call per slot); nil for a free slot.
    public func holders() async throws -> [LeaderInfo?] {
        var holders: [LeaderInfo?] = []
        for slotKey in slotKeys { holders.append(try await store.current(key: slotKey)) }
        return holders
    }

    // MARK: Holding a permit

    /// Waits for a permit, runs `body` while holding it, and cancels `body` if the permit's term ends.
    ///
    /// Announces the number of permits, campaigns for a slot (see "Slots" above), and once elected to one calls
    /// `body` with the permit (pass ``Permit/token`` to the resources the work writes to). When `body` returns or
    /// throws, the slot is released (after `body` has returned, as for ``LeaderElector/withLeadership(_:)``) and
    /// the next waiter takes it at once. If the slot's term ends first (lost, or its deadline passed without a
    /// renew), `body`'s task is cancelled and, after it returns, this throws ``BatonError`` `lost`.
    ///
    /// Store errors while waiting are retried, as an elector does; cancelling the caller's task ends the wait and
    /// leaves every slot's queue.
    /// - Throws: what `body` throws; ``BatonError`` `lost` if the permit's term ended while `body` ran;
    ///   `invalidArgument` if the semaphore is in use with another number of permits, its key is held as a
    ///   lease, or another ``withPermit(_:)`` of this instance runs; `CancellationError` if the caller is cancelled
    ///   before it holds a permit.
    public func withPermit<T: Sendable>(_ body: @escaping @Sendable (Permit) async throws -> T) async throws -> T {
        let claimed = busy.withLock { busy in
            if busy { return false }
            busy = true
            return true
        }
        guard claimed else {
            throw BatonError.invalidArgument(
                "a withPermit of \(holder) on semaphore \(key) is already running; one runs at a time per instance")
        }
        defer { busy.withLock { $0 = false } }
        return try await announcing {
            let choice = try await chooseSlot()
            let elector = choice.elector
            let result: Result<T, any Error>
            do {
                result = .success(
                    try await elector.work(in: choice.lease) { lease in
                        try await body(Permit(semaphore: self.key, slot: choice.slot, lease: lease, elector: elector))
                    })
            } catch {
                result = .failure(error)
            }
            // Released now that the work has returned; the next waiter takes the slot at once.
            await choice.finish()
            return try result.get()
        }
    }

    /// Announces the number of permits while `body` runs (see "The number of permits is part of the semaphore"),
    /// and withdraws it afterwards.
    /// - Throws: what `body` throws; ``BatonError`` `invalidArgument` if another number is announced, or the key is
    ///   held as a lease (then `body` does not run).
    package func announcing<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await layout.announcement.keep(
            on: store, holder: holder, ttl: configuration.ttl, clock: clock, logger: logger,
            stopped: { [self] in stopped.withLock { $0 } },
            announce: { [layout, store, holder, configuration] in
                try await layout.announce(on: store, holder: holder, ttl: configuration.ttl)
            },
            body)
    }

    /// A slot won by ``chooseSlot()``: its elector leads it, in the campaign that `campaign` runs.
    package struct SlotChoice: Sendable {
        /// The slot won.
        package var slot: Int
        /// Its term, counted as work of that term: call ``LeaderElector/workReturned(_:)`` once it is done with.
        package var lease: Lease
        /// The slot's elector.
        package var elector: LeaderElector
        /// The elector's campaign (its `run()`): it goes on until the elector resigns or loses the campaign.
        package var campaign: Task<Void, Never>
        /// The elector's events since before its campaign began.
        package var events: AsyncStream<ElectorEvent>
        /// The other slots' campaigns, resigned and ending.
        package var leaving: [Task<Void, Never>]

        /// Resigns the slot won (released once its work has returned) and waits until every campaign has ended.
        package func finish() async {
            elector.resign()
            await campaign.value
            for other in leaving { await other.value }
        }
    }

    /// Campaigns for a slot (see "Slots" above) and returns the first one won, its campaign going on; every other
    /// slot's campaign is resigned and ending (``SlotChoice/finish()`` waits for them).
    /// - Throws: `CancellationError` if the caller is cancelled, or ``stopChoosing()`` was called, before a slot
    ///   is won (every campaign has then ended).
    package func chooseSlot() async throws -> SlotChoice {
        // One campaign per slot, each ended on its own by resigning: its elector leaves the slot's queue and
        // releases a term it won meanwhile (unused), also one an acquire in flight is still granting. The campaign is
        // claimed before its task starts, so a resignation never comes before it.
        let order = (0..<permits).map { (preferredSlot + $0) % permits }
        // Subscribed before the campaigns start: the winner's for the caller, the preferred slot's for this choice.
        let events = slots.map(\.events)
        let probe = slots[order[0]].events
        var runs: [Int: Task<Void, Never>] = [:]
        func start(_ index: Int) throws {
            let elector = slots[index]
            guard let campaign = elector.claimCampaign() else { return }
            runs[index] = Task { await elector.run(campaign) }
            // A stop asked before this campaign was claimed found nothing to resign.
            if stopped.withLock({ $0 }) { throw CancellationError() }
        }
        func end(_ runs: [Int: Task<Void, Never>]) async {
            for index in runs.keys { slots[index].resign() }
            for run in runs.values { await run.value }
        }
        let slot: Int
        let lease: Lease
        do {
            try start(order[0])
            if permits > 1, await !electedFirst(order[0], probe) {
                for index in order.dropFirst() { try start(index) }
            }
            (slot, lease) = try await firstElection(among: Set(runs.keys))
        } catch {
            await end(runs)
            throw error
        }
        guard let winner = runs.removeValue(forKey: slot) else { throw CancellationError() }
        // The other slots are left now, but not waited for: their leaving (a leave of the queue, a release of a
        // term won at the same moment) would delay the work by its store round trips. ``SlotChoice/finish()`` waits.
        for index in runs.keys { slots[index].resign() }
        return SlotChoice(
            slot: slot, lease: lease, elector: slots[slot], campaign: winner, events: events[slot],
            leaving: Array(runs.values))
    }

    /// Ends every slot's campaign, once and for all: an ``announcing(_:)`` still retrying a store that cannot be
    /// reached and a ``chooseSlot()`` under way throw `CancellationError`, and the slot won resigns (after its work
    /// has returned).
    package func stopChoosing() {
        stopped.withLock { $0 = true }
        for slot in slots { slot.resign() }
    }

    /// Whether the slot at `index` was elected before anything said it is held (another holder seen, a store error,
    /// a ttl without an answer, or the end of its campaign).
    private func electedFirst(_ index: Int, _ events: AsyncStream<ElectorEvent>) async -> Bool {
        let elector = slots[index]
        let holder = holder
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                // Ends when the campaign does, or when this wait is cancelled.
                await elector.waitUntilIdle()
                return false
            }
            group.addTask {
                for await event in events {
                    switch event {
                    case .elected: return true
                    case .leaderChanged(let info?) where info.holder != holder: return false
                    case .storeError: return false
                    default: continue
                    }
                }
                return false
            }
            group.addTask { [clock, configuration] in
                try? await clock.sleep(for: configuration.ttl)
                return elector.role.isLeader
            }
            let elected = await group.next() ?? false
            group.cancelAll()
            return elected
        }
    }

    /// Waits until one of the slots at `indices` is elected; returns it with its lease, counted as its work. Terms of
    /// other slots won at the same moment are handed back (their electors are resigned by the caller).
    private func firstElection(among indices: Set<Int>) async throws -> (Int, Lease) {
        try await withThrowingTaskGroup(of: (Int, Lease).self) { group in
            for index in indices {
                // A campaign that ends (resigned by stopChoosing()) fails its waiter, and with it the choice.
                group.addTask { (index, try await self.slots[index].waitForLeadership(onlyWhileRunning: true)) }
            }
            guard let first = try await group.next() else { throw CancellationError() }
            group.cancelAll()
            while true {
                do {
                    guard let other = try await group.next() else { break }
                    // Elected at the same moment: not this holder's permit.
                    slots[other.0].workReturned(other.1.token)
                } catch {
                    continue
                }
            }
            return first
        }
    }
}

/// A permit of a ``SemaphoreElector``: one slot, held in one term of that slot's key.
public struct Permit: Sendable {
    /// The semaphore's key.
    public let semaphore: String
    /// The slot held, 0 ..< permits.
    public let slot: Int
    /// The slot's term: its key is the slot's key, its token rises with every term of the slot.
    public let lease: Lease
    let elector: LeaderElector

    /// The fencing token of this slot's term: hand it to the resource the work writes to, with the slot.
    public var token: FencingToken { lease.token }

    /// The time left in this permit's term on its elector's clock, live (every renew moves it on); nil once the term
    /// is over. Work that must stop before the slot can pass to another holder reads it.
    public var timeLeft: Duration? { elector.timeLeft(in: lease.token) }
}
