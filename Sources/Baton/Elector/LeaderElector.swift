import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Campaigns for one key of a ``LeaseStore`` and tells its owner when it leads.
///
/// ```swift
/// let elector = try LeaderElector(store: store, key: "nightly-cleaner", holder: "host-a")
/// try await elector.withLeadership { lease in
///     try await cleanUp(fencingToken: lease.token)   // cancelled at once if leadership ends
/// }
/// ```
///
/// ## The safety rule
/// Let `t0` be the local monotonic time at which the acquire or renew request was *sent*. After a successful
/// answer the elector believes it leads only until `deadline = t0 + ttl − margin`. If no renew succeeds before the
/// deadline it demotes itself *at* the deadline — even if the store cannot be reached, even if a renew is still
/// in flight — and cancels the leader's work. The store cannot expire the term before `t0 + ttl`, so with clock
/// rates that differ by less than `margin/ttl` the old leader stops before any new leader can start. Wall clocks
/// are never compared. A process paused for longer than the margin (a stop signal, a long GC pause) can still act
/// late: hand ``Lease/token`` to the resource so it can refuse a stale leader.
///
/// ## Running
/// ``run()`` campaigns until the task is cancelled, ``resign()`` is called or a ServiceLifecycle graceful shutdown
/// begins; all three release a lease they hold once its work has returned (see "Release after work" below), so the next
/// candidate starts at once. Store requests still in flight when a campaign ends are cancelled, not waited for. While
/// waiting, the elector follows the store's change feed, so a release wakes it at once rather than at its next poll,
/// and reads the store once per ttl in case the feed died silently; while leading it does not (its renews tell it
/// whether its term goes on). On a store that queues waiting candidates (SQLite, PostgreSQL, etcd, Redis on one server)
/// it asks again instead, once per ttl (every third of the ttl on etcd): each ask keeps its place in the queue. An elector that resigns or is
/// cancelled while it waits leaves the queue at once (``LeaseStore/leaveQueue(key:holder:)``), so a release that
/// follows passes it over instead of handing the key to a candidate that has gone.
///
/// ``withLeadership(_:)`` runs work while leading. If ``run()`` is not running, it campaigns by itself for the
/// duration of the call and resigns when the work returns.
///
/// ## Release after work
/// However a term ends — ``resign()``, graceful shutdown, cancellation, quorum loss — the elector demotes, cancels
/// the term's ``withLeadership(_:)`` work, waits for that work to *return*, and only then releases the key, so the
/// next leader never starts while this one's work still runs. Cancellation is cooperative: work that ignores it is
/// waited for, but never past the term's deadline. Work still running at the deadline is not released at all: the
/// store's ttl frees the key (a warning is logged and `baton_release_skipped_total` counts it). Work that wants to
/// stop in time by itself reads ``timeLeft``.
///
/// ## Many electors in one process
/// A campaign keeps no task of its own: the elector's state machine handles each input (an answer of the store, a
/// timer, a change of the feed) where it arrives, and timers on the host's clock are entries in one heap that a
/// single task serves for the whole process. A leader costs its caller's task waiting in ``run()``, a few objects,
/// and one renew per renew interval (SQLite commits the renews that arrive together at once, PostgreSQL sends them
/// in one statement; BENCHMARKS.md measures 10,000 electors in one process).
///
/// ``events`` may be read by any number of consumers, or by none: delivery never blocks the elector (each
/// consumer keeps the newest 256 events).
public final class LeaderElector: Service, Sendable {
    typealias Input = ElectorStateMachine.Input

    struct TermWaiter {
        var token: FencingToken
        var continuation: CheckedContinuation<DemotionReason, Never>
    }

    struct Shared {
        var role: ElectorRole = .detached
        var running = false
        /// The campaign running now.
        var campaign: Campaign?
        var nextID = 0
        var subscribers: [Int: AsyncStream<ElectorEvent>.Continuation] = [:]
        var leaderWaiters: [Int: CheckedContinuation<Lease, any Error>] = [:]
        var termWaiters: [Int: TermWaiter] = [:]
        var idleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        /// The deadline of the term led now, on the elector's clock (nil while not leading).
        var deadline: Duration?
        /// How many ``withLeadership(_:)`` bodies of each term (by token) are running.
        var work: [FencingToken: Int] = [:]
        /// Releases waiting for the work of a term (by token) to return.
        var workWaiters: [Int: (token: FencingToken, continuation: CheckedContinuation<Bool, Never>)] = [:]
        /// The traces of the latest terms, by token (only when a tracer is in use).
        var termTraces: [FencingToken: TermTrace] = [:]
        /// Releases and leaves of the queue not yet answered by the store, also those whose wait timed out.
        var writesInFlight = 0
        /// Acquires waiting for ``writesInFlight`` to reach zero.
        var settleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]

        mutating func takeID() -> Int {
            nextID += 1
            return nextID
        }
    }

    /// The store campaigned on.
    public let store: LeaseStore
    /// The key campaigned for.
    public let key: String
    /// This elector's identity in the store.
    public let holder: String
    /// The validated configuration.
    public let configuration: ElectorConfiguration

    let clock: BatonClock
    let logger: Logger
    let metrics: ElectorMetrics
    let seed: UInt64
    let shared = Mutex(Shared())

    /// Creates an elector on the host's continuous clock.
    /// - Parameters:
    ///   - store: the store to campaign on.
    ///   - key: the key to lead (1–256 bytes of UTF-8, no control characters).
    ///   - holder: this candidate's identity, unique among the candidates (default: `hostname:pid`).
    ///   - configuration: ttl, renew interval, margin and the rest; validated here.
    ///   - logger: where the elector logs, with the key and holder as metadata.
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key or holder, or a configuration whose values do
    ///   not fit together (see ``ElectorConfiguration/validate()``).
    public convenience init(
        store: LeaseStore,
        key: String,
        holder: String = LeaderElector.defaultHolder,
        configuration: ElectorConfiguration = ElectorConfiguration(),
        logger: Logger = Logger(label: "baton.elector")
    ) throws {
        try self.init(
            store: store,
            key: key,
            holder: holder,
            configuration: configuration,
            clock: ContinuousClock(),
            logger: logger
        )
    }

    /// Creates an elector on the given monotonic clock (a `ManualClock` in tests).
    /// - Parameters:
    ///   - store: the store to campaign on.
    ///   - key: the key to lead (1–256 bytes of UTF-8, no control characters).
    ///   - holder: this candidate's identity, unique among the candidates (default: `hostname:pid`).
    ///   - configuration: ttl, renew interval, margin and the rest; validated here.
    ///   - clock: the monotonic clock that times renews and the safety deadline.
    ///   - logger: where the elector logs, with the key and holder as metadata.
    ///   - seed: seeds the retry jitter, so a test can replay a run; nil picks a random seed.
    public init<C: Clock>(
        store: LeaseStore,
        key: String,
        holder: String = LeaderElector.defaultHolder,
        configuration: ElectorConfiguration = ElectorConfiguration(),
        clock: C,
        logger: Logger = Logger(label: "baton.elector"),
        seed: UInt64? = nil
    ) throws where C.Duration == Duration {
        try BatonValidation.name(key, "key")
        try BatonValidation.name(holder, "holder")
        try configuration.validate()
        self.store = store
        self.key = key
        self.holder = holder
        self.configuration = configuration
        self.clock = BatonClock(clock)
        var logger = logger
        logger[metadataKey: "baton.key"] = "\(key)"
        logger[metadataKey: "baton.holder"] = "\(holder)"
        self.logger = logger
        self.metrics = ElectorMetrics(key: key)
        self.seed = seed ?? UInt64.random(in: .min ... .max)
        _ = Self.runtimeWarmUp
    }

    /// The Swift runtime builds a generic type's metadata, and looks up the conformances it needs, the first time a
    /// process uses the type: tens of microseconds each in a binary of this size, as it searches every conformance
    /// the binary declares. A candidate that waited would do that on its election's path (the first term's work
    /// count), so it is done once per process, with the first elector.
    private static let runtimeWarmUp: Int = {
        var work: [FencingToken: Int] = [:]
        work[1, default: 0] += 1
        work[1] = nil
        return work.count
    }()

    /// `hostname:pid`, the default holder identity.
    public static var defaultHolder: String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    // MARK: Observing

    /// What this elector believes now.
    public var role: ElectorRole { shared.withLock { $0.role } }

    /// The time left in the term this elector leads now, on its clock: until `t0 + ttl − margin`, where `t0` is when
    /// the last successful acquire or renew was sent. A live value: every successful renew moves it on; nil while
    /// not leading. Work that must stop before its term can pass to another holder reads it (at worst it has
    /// `timeLeft` to finish, if no further renew succeeds), rather than a value taken when the term began.
    public var timeLeft: Duration? {
        guard let deadline = shared.withLock({ $0.role.isLeader ? $0.deadline : nil }) else { return nil }
        return max(.zero, deadline - clock.now())
    }

    /// The time left in the term of `token` (see ``timeLeft``), nil unless this elector leads in that term: the token
    /// is checked on both sides of the read.
    package func timeLeft(in token: FencingToken) -> Duration? {
        guard role.lease?.token == token, let left = timeLeft, role.lease?.token == token else { return nil }
        return left
    }

    /// The current leader according to the store (a store call).
    public func currentLeader() async throws -> LeaderInfo? {
        try await store.current(key: key)
    }

    /// A new stream of this elector's events from now on. Each call makes an independent subscriber; a
    /// subscriber that does not read keeps only the newest 256 events and never slows the elector down.
    public var events: AsyncStream<ElectorEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: ElectorEvent.self,
            bufferingPolicy: .bufferingNewest(256)
        )
        let id = shared.withLock { shared in
            let id = shared.takeID()
            shared.subscribers[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.shared.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    // MARK: Running

    /// Campaigns for the key until cancelled, resigned, or shut down gracefully.
    ///
    /// Returns after ``resign()`` or a graceful shutdown once the key is released (or
    /// ``ElectorConfiguration/releaseTimeout`` passed), and after cancellation once a held lease is released. Store
    /// errors never end it: it retries with backoff and reports them as ``ElectorEvent/storeError(_:)``.
    ///
    /// One campaign runs at a time per elector: if another `run()`, or a ``withLeadership(_:)`` campaigning on its
    /// own, is active, this call waits for it to end and then campaigns.
    public func run() async throws {
        while !Task.isCancelled {
            if let campaign = claimCampaign() {
                await run(campaign)
                return
            }
            await withGracefulShutdownHandler {
                await waitUntilIdle()
            } onGracefulShutdown: {
                self.resign()
            }
        }
    }

    /// Marks a new campaign as running and returns it, or nil if a campaign already runs.
    package func claimCampaign() -> Campaign? {
        let campaign = Campaign(
            elector: self,
            machine: ElectorStateMachine(
                settings: .init(
                    configuration, queuesWaiters: store.queuesWaiters, queueAsksPerTTL: store.queueAsksPerTTL,
                    holder: holder),
                seed: seed)
        )
        let claimed = shared.withLock { shared in
            if shared.running { return false }
            shared.running = true
            shared.campaign = campaign
            return true
        }
        return claimed ? campaign : nil
    }

    /// Waits until no campaign runs (or the caller is cancelled).
    func waitUntilIdle() async {
        let id = shared.withLock { $0.takeID() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let idle = shared.withLock { shared in
                    if !shared.running || Task.isCancelled { return true }
                    shared.idleWaiters[id] = continuation
                    return false
                }
                if idle { continuation.resume() }
            }
        } onCancel: {
            shared.withLock { $0.idleWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Runs `campaign` until it finishes.
    package func run(_ campaign: Campaign) async {
        logger.info("campaigning", metadata: ["baton.ttl": "\(configuration.ttl)"])
        await withGracefulShutdownHandler {
            let end = await campaign.run()
            await finish(end)
        } onGracefulShutdown: {
            campaign.send(.resign)
        }
        await campaign.close()
        let waiters = shared.withLock { shared in
            shared.running = false
            shared.campaign = nil
            shared.role = .detached
            shared.deadline = nil
            defer {
                shared.leaderWaiters = [:]
                shared.termWaiters = [:]
                shared.idleWaiters = [:]
            }
            return (
                Array(shared.leaderWaiters.values), Array(shared.termWaiters.values), Array(shared.idleWaiters.values)
            )
        }
        for waiter in waiters.0 { waiter.resume(throwing: CancellationError()) }
        for waiter in waiters.1 { waiter.continuation.resume(returning: .resigned) }
        for waiter in waiters.2 { waiter.resume() }
        metrics.isLeader.record(0)
        logger.info("stopped campaigning")
    }

    /// Steps down and leaves the election: work running under ``withLeadership(_:)`` is cancelled, and once it
    /// has returned the key is released, so the next candidate starts at once. ``run()`` returns once the release
    /// is confirmed or ``ElectorConfiguration/releaseTimeout`` passed (work still running at the term's deadline
    /// is not waited for, and the key is then left to expire). A no-op if the elector is not running.
    public func resign() {
        shared.withLock { $0.campaign }?.send(.resign)
    }

    /// Runs `body` while this elector leads, and cancels it when leadership ends.
    ///
    /// Waits until elected, then calls `body` with the lease (pass `lease.token` to the resources the work writes
    /// to). If leadership ends first (the term was lost, the deadline passed without a renew, or the elector
    /// resigned), `body`'s task is cancelled, and after it returns this throws ``BatonError`` `lost`. A term
    /// that ends by resignation, shutdown or cancellation is released only after `body` has returned; `body` can
    /// read ``timeLeft`` to stop in time by itself.
    ///
    /// If ``run()`` is not running, this call campaigns by itself and resigns when `body` returns or throws,
    /// handing the key to the next candidate at once; a ``run()`` started meanwhile waits for that and then
    /// campaigns. If ``run()`` is already running, leadership stays with it after `body` returns (so in a
    /// `ServiceGroup`, let the elector start before calling this, or loop: the next call joins `run()`).
    /// - Throws: what `body` throws; ``BatonError`` `lost` if leadership ended while `body` ran;
    ///   `CancellationError` if the caller is cancelled or the elector stops before it is elected.
    public func withLeadership<T: Sendable>(_ body: @escaping @Sendable (Lease) async throws -> T) async throws -> T {
        guard let campaign = claimCampaign() else { return try await lead(body) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.run(campaign) }
            do {
                let value = try await lead(body)
                resign()
                try await group.waitForAll()
                return value
            } catch {
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    // MARK: Leading

    enum LeadOutcome<T: Sendable>: Sendable {
        case finished(T)
        case demoted(DemotionReason)
    }

    /// Like ``withLeadership(_:)``, but only ever joins the campaign of a ``run()`` under way: never campaigns
    /// by itself. For a caller whose `run()` owns the campaign and may resign at any moment (`baton run` on a stop
    /// signal): once that `run()` has ended, or if none runs, this throws `CancellationError` at once, where
    /// ``withLeadership(_:)`` would start a campaign of its own and wait for a leadership nobody asked for.
    /// - Throws: what `body` throws; ``BatonError`` `lost` if leadership ended while `body` ran;
    ///   `CancellationError` if no `run()` runs, it ends before this elector is elected, or the caller is
    ///   cancelled.
    package func withLeadershipOfRun<T: Sendable>(
        _ body: @escaping @Sendable (Lease) async throws -> T
    ) async throws -> T {
        try await lead(body, onlyWhileRunning: true)
    }

    /// Whether a caller waits in ``withLeadership(_:)`` (or ``withLeadershipOfRun(_:)``) to be elected: for tests.
    package var isWaitingForLeadership: Bool { shared.withLock { !$0.leaderWaiters.isEmpty } }

    func lead<T: Sendable>(
        _ body: @escaping @Sendable (Lease) async throws -> T, onlyWhileRunning: Bool = false
    ) async throws -> T {
        // Counted as the term's work from the moment it is handed the lease until the body has returned.
        try await work(in: try await waitForLeadership(onlyWhileRunning: onlyWhileRunning), body)
    }

    /// Runs `body` as work of the term of `lease`, which ``waitForLeadership(onlyWhileRunning:)`` handed out and
    /// counted: cancels it when the term ends here, and counts it as returned (``workReturned(_:)``) once it has.
    ///
    /// The count drops in `body`'s own task the moment `body` returns, not once this call returns: a release that
    /// waits for the work (a resignation, which `baton run` sends as its command ends) goes ahead at once, while the
    /// task watching for a demotion is still being ended.
    package func work<T: Sendable>(
        in lease: Lease, _ body: @escaping @Sendable (Lease) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: LeadOutcome<T>.self) { group in
            // A child task always runs, even when added to a cancelled group: the count always drops once.
            group.addTask {
                defer { self.workReturned(lease.token) }
                return .finished(try await self.inTermContext(lease.token) { try await body(lease) })
            }
            group.addTask { .demoted(await self.waitForDemotion(of: lease)) }
            guard let first = try await group.next() else { throw CancellationError() }
            group.cancelAll()
            switch first {
            case .finished(let value):
                return value
            case .demoted(let reason):
                while true {
                    do {
                        guard try await group.next() != nil else { break }
                    } catch {
                        continue
                    }
                }
                throw BatonError.lost(key: key, "leadership ended (\(reason)) while the work ran")
            }
        }
    }

    /// Waits until this elector leads and returns the lease, counting the caller as work of that term (see
    /// ``workReturned(_:)``, which the caller must call once its work has returned). With `onlyWhileRunning`, throws
    /// `CancellationError` at once if no campaign runs (a campaign's end fails the waiters it leaves, under the same
    /// lock).
    package func waitForLeadership(onlyWhileRunning: Bool = false) async throws -> Lease {
        let id = shared.withLock { $0.takeID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                let immediate: Result<Lease, any Error>? = shared.withLock { shared in
                    if Task.isCancelled || (onlyWhileRunning && !shared.running) {
                        return .failure(CancellationError())
                    }
                    if let lease = shared.role.lease {
                        shared.work[lease.token, default: 0] += 1
                        return .success(lease)
                    }
                    shared.leaderWaiters[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            shared.withLock { $0.leaderWaiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    /// Waits until the term of `lease` ends here, or the caller is cancelled (then returns `.resigned`).
    func waitForDemotion(of lease: Lease) async -> DemotionReason {
        let id = shared.withLock { $0.takeID() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<DemotionReason, Never>) in
                let ended = shared.withLock { shared -> Bool in
                    if Task.isCancelled { return true }
                    guard shared.role.lease?.token == lease.token else { return true }
                    shared.termWaiters[id] = TermWaiter(token: lease.token, continuation: continuation)
                    return false
                }
                if ended { continuation.resume(returning: .lost) }
            }
        } onCancel: {
            shared.withLock { $0.termWaiters.removeValue(forKey: id) }?.continuation.resume(returning: .resigned)
        }
    }

    // MARK: Publishing state

    func becameLeader(_ lease: Lease, deadline: Duration?) {
        let waiters = shared.withLock { shared in
            shared.role = .leader(lease)
            shared.deadline = deadline
            defer { shared.leaderWaiters = [:] }
            // Each waiter is handed the lease as work of this term.
            if !shared.leaderWaiters.isEmpty { shared.work[lease.token, default: 0] += shared.leaderWaiters.count }
            return Array(shared.leaderWaiters.values)
        }
        metrics.isLeader.record(1)
        metrics.elections.increment()
        traceTermStart(lease)
        logger.info("elected", metadata: ["baton.token": "\(lease.token)"])
        emit(.elected(lease))
        for waiter in waiters { waiter.resume(returning: lease) }
    }

    func extended(_ lease: Lease, deadline: Duration?) {
        shared.withLock { shared in
            shared.role = .leader(lease)
            shared.deadline = deadline
        }
        emit(.renewed(lease))
    }

    func lostLeadership(_ lease: Lease, _ reason: DemotionReason) {
        let waiters = shared.withLock { shared in
            shared.role = reason == .deadlineReached ? .detached : .follower(of: nil)
            shared.deadline = nil
            let ended = shared.termWaiters.filter { $0.value.token == lease.token }
            for id in ended.keys { shared.termWaiters[id] = nil }
            return Array(ended.values)
        }
        metrics.isLeader.record(0)
        metrics.demoted(reason)
        traceTermEnd(lease, reason)
        if reason == .resigned {
            logger.info("resigned", metadata: ["baton.token": "\(lease.token)"])
        } else {
            logger.warning("demoted", metadata: ["baton.token": "\(lease.token)", "baton.reason": "\(reason)"])
        }
        for waiter in waiters { waiter.continuation.resume(returning: reason) }
        emit(.demoted(lease, reason))
    }

    func observedLeader(_ info: LeaderInfo?) {
        shared.withLock { shared in
            if shared.role.lease == nil, info?.holder != holder { shared.role = .follower(of: info) }
        }
        logger.debug("leader changed", metadata: ["baton.leader": "\(info?.description ?? "none")"])
        emit(.leaderChanged(info))
    }

    func storeFailed(_ error: BatonError) {
        shared.withLock { shared in
            if shared.role.lease == nil { shared.role = .detached }
        }
        metrics.storeErrors.increment()
        logger.warning("store call failed", metadata: ["baton.error": "\(error)"])
        emit(.storeError(error))
    }

    func emit(_ event: ElectorEvent) {
        let subscribers = shared.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    static func batonError(_ error: any Error) -> BatonError {
        if let error = error as? BatonError { return error }
        return .storeUnavailable("store call failed: \(error)", underlying: error)
    }
}
