import ServiceLifecycle
import Tracing

/// A store that Baton elects over: the one front every caller uses, over the ``LeaseStoreDriver`` of one kind
/// of store (SQLite, Redis, etcd, PostgreSQL, S3, memory).
///
/// The front does what every store would otherwise repeat, in one place and the same way for all of them:
/// - **Arguments are checked before any I/O.** Keys, holders, systems, rounds, candidates, groups and members
///   are 1–256 bytes of UTF-8 without control characters; metadata is at most 4 KiB; ttls and retentions are
///   1 ms to 366 days. Anything else throws ``BatonError/Code/invalidArgument`` naming what is wrong.
/// - **Every request has a deadline** (``Configuration/requestTimeout``). A request without an answer by then
///   throws ``BatonError/Code/timeout`` at once, and the driver's work on it is cancelled; its outcome is
///   unknown. The caller is not held past the deadline by a driver that is slow to honour the cancellation.
/// - **Acquires are bounded**: at most 256 run at once per store; the others wait their turn, in arrival order and
///   within their deadline (renews and releases never wait). Thousands of electors starting together thus do
///   not flood the store or leave the memory of thousands of requests in flight behind.
/// - **Errors are ``BatonError``s.** What a driver did not map becomes ``BatonError/Code/storeUnavailable``
///   naming only the error's type, so no client error can carry a password into a log.
/// - **Listings** (``leases(prefix:limit:)``, ``rounds(system:limit:)``) are bounded by a limit the front checks,
///   and sorted by the front whatever order the store reads in.
/// - **Metrics** for every request, with the dimensions `store` and `operation`:
///   `baton_store_requests_total` (counter), `baton_store_request_duration_seconds` (timer) and
///   `baton_store_request_errors_total` (counter, also with `code`).
///
/// ## Running the store
///
/// A store is a ServiceLifecycle `Service`: its connections, listeners and keep-alives live in ``run()``. Put it
/// in the `ServiceGroup` of your service, before the electors that use it, so a graceful shutdown stops the
/// electors first (their last release reaches the store) and the store last:
///
/// ```swift
/// let store = LeaseStore(try SQLiteLeaseStore(path: "baton.db"))
/// let elector = LeaderElector(store: store, key: "nightly-cleaner", holder: "host-a")
/// let group = ServiceGroup(services: [store, elector], logger: logger)
/// try await group.run()
/// ```
///
/// For a script or a test, ``withRunning(_:)`` runs the store around a closure. A call made while the store is
/// not running waits up to ``Configuration/startTimeout`` for ``run()`` to begin (services of one group start
/// together), then throws ``BatonError/Code/storeUnavailable`` saying that `run()` was not called: a forgotten
/// `run()` is a clear error, never a hang.
public struct LeaseStore: Service, Sendable {
    /// How the front bounds requests.
    public struct Configuration: Sendable {
        /// The longest a request may take before it is cancelled and throws ``BatonError/Code/timeout``.
        /// Ten seconds by default. Electors bound their own requests more tightly (a renew must answer within
        /// the renew interval), so this matters for direct callers.
        public var requestTimeout: Duration
        /// How long a call made before ``LeaseStore/run()`` has begun waits for it, one second by default.
        public var startTimeout: Duration
        /// Where the spans of this store's requests and of its electors' terms go (see <doc:TracingTerms>). Nil (the default) uses the tracer bootstrapped with `InstrumentationSystem`,
        /// read when the front is made: bootstrap it first. With no tracer (the no-op one), nothing is traced and
        /// tracing costs nothing.
        public var tracer: (any Tracer)?
        /// Whether a holder may also acquire through other instances of the store (other processes' fronts on the
        /// same server or file), as a client of several `baton serve` replicas does. Then a waiting holder that
        /// was handed the key by a release is granted its term only on the server's answer to a request, never on
        /// the release's message alone (which a late message could show for a term the holder has since taken and
        /// released through another instance). False by default: an elector asks through its own store only, and
        /// takes a handed term without a request on Redis, PostgreSQL, SQLite and etcd. `baton serve` asks the server
        /// for every waiting acquire whatever this says.
        public var holdersAskThroughOtherInstances: Bool

        /// The defaults: requests within 10 s, a second's wait for `run()`, the bootstrapped tracer, holders that
        /// ask through this instance only.
        public init(
            requestTimeout: Duration = .seconds(10),
            startTimeout: Duration = .seconds(1),
            tracer: (any Tracer)? = nil,
            holdersAskThroughOtherInstances: Bool = false
        ) {
            self.requestTimeout = requestTimeout
            self.startTimeout = startTimeout
            self.tracer = tracer
            self.holdersAskThroughOtherInstances = holdersAskThroughOtherInstances
        }
    }

    /// The driver this front wraps.
    public let driver: any LeaseStoreDriver
    let core: LeaseStoreCore

    /// A front over `driver`.
    /// - Parameters:
    ///   - driver: the store's driver, not yet running; this front runs it in ``run()``.
    ///   - configuration: request deadlines.
    ///   - clock: times deadlines (a `ManualClock` in tests).
    public init<C: Clock>(
        _ driver: some LeaseStoreDriver,
        configuration: Configuration = Configuration(),
        clock: C = ContinuousClock()
    ) where C.Duration == Duration {
        self.driver = driver
        self.core = LeaseStoreCore(
            storeName: driver.storeName,
            needsRun: driver.needsRun,
            requestExecutor: driver.requestExecutor,
            honoursRequestAbort: driver.honoursRequestAbort,
            configuration: configuration,
            clock: BatonClock(clock)
        )
    }

    /// A new, empty store in this process's memory (``MemoryLeaseStore``); it needs no ``run()``.
    /// - Parameter clock: judges expiry and deadlines; `ManualClock` from `BatonTestKit` makes them
    ///   deterministic in tests.
    public static func memory<C: Clock>(clock: C = ContinuousClock()) -> LeaseStore where C.Duration == Duration {
        LeaseStore(MemoryLeaseStore(clock: clock), clock: clock)
    }

    /// The kind of store (`sqlite`, `redis`, ...).
    public var storeName: String { core.storeName }

    /// How this front bounds requests, as it was made.
    public var configuration: Configuration { core.configuration }

    /// Runs the store's background work until the task is cancelled or a graceful shutdown ends it; calls
    /// made meanwhile reach the store. A store runs once: calling `run()` again throws
    /// ``BatonError/Code/invalidArgument``.
    /// - Throws: what the driver's run throws (it cannot open its file, its credentials are refused).
    public func run() async throws {
        try core.started()
        defer { core.ended() }
        try await driver.run()
    }

    /// Runs the store while `body` runs, then stops it: for scripts, tools and tests that need no
    /// `ServiceGroup`.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws, or what the store's ``run()`` threw if it ended first.
    public func withRunning<T>(_ body: (LeaseStore) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            do {
                let value = try await body(self)
                group.cancelAll()
                while (try? await group.next()) != nil {}
                return value
            } catch {
                group.cancelAll()
                // A store that failed to run explains the body's failure better than the body's own error.
                while true {
                    do {
                        guard try await group.next() != nil else { break }
                    } catch is CancellationError {
                        break
                    } catch let runError {
                        throw runError
                    }
                }
                throw error
            }
        }
    }

    // MARK: Leases

    /// Takes `key` for `holder` if it is free or expired, or renews it if `holder` already holds it.
    ///
    /// A free or expired key starts a new term with a new, larger fencing token; the holder's own live term
    /// keeps its token and gets a new time to live and the given metadata (up to 4 KiB published to everyone).
    ///
    /// `waiting` says that the caller waits for the key and asks again until it gets it (an elector, a long
    /// poll). On a store that queues waiting candidates (``queuesWaiters``) a refused waiting acquire keeps the
    /// holder's place in the queue, renewed by each further waiting acquire, so the caller asks again at least
    /// every ``queueAskInterval(ttl:)``; a refused acquire that does not wait leaves no trace in the
    /// store. Other stores answer both alike.
    /// - Returns: ``AcquireResult/acquired(_:)`` with the lease, or ``AcquireResult/held(by:)`` with the leader.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`, `unauthorized`.
    public func acquire(
        key: String, holder: String, ttl: Duration, metadata: String? = nil, waiting: Bool = false
    ) async throws -> AcquireResult {
        try BatonValidation.name(key, "key")
        try BatonValidation.name(holder, "holder")
        try BatonValidation.duration(ttl, "ttl")
        try BatonValidation.metadata(metadata)
        let elsewhere = configuration.holdersAskThroughOtherInstances
        let acquire = { [driver, core] in
            try await core.perform(.acquire) {
                // At most LeaseStoreCore.maximumAcquiresUnderWay at once; the others wait their turn, within their
                // deadline.
                try await core.acquires.run {
                    guard waiting, elsewhere else {
                        return try await driver.acquire(
                            key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: waiting)
                    }
                    return try await HandedTerms.$holderMayAskElsewhere.withValue(true) {
                        try await driver.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: true)
                    }
                }
            }
        }
        guard let tracing = core.tracing else { return try await acquire() }
        return try await tracing.withSpan("baton.acquire", attributes: spanAttributes(key: key, holder: holder)) {
            span in
            let result = try await acquire()
            switch result {
            case .acquired(let lease):
                span.attributes["baton.outcome"] = "acquired"
                span.attributes["baton.token"] = lease.token
            case .held(let leader):
                span.attributes["baton.outcome"] = "held"
                span.attributes["baton.leader"] = leader.holder
                span.attributes["baton.token"] = leader.token
            }
            return result
        }
    }

    /// The attributes of a span of a request for `key` by `holder`.
    private func spanAttributes(key: String, holder: String, token: FencingToken? = nil) -> SpanAttributes {
        var attributes = SpanAttributes.baton(key: key, holder: holder, token: token)
        attributes["baton.store"] = storeName
        return attributes
    }

    /// Whether a waiting candidate keeps a place in a queue of the store's own (SQLite's, PostgreSQL's,
    /// etcd's election queue, Redis's on one server), and so must ask again
    /// (``acquire(key:holder:ttl:metadata:waiting:)``) at least every ``queueAskInterval(ttl:)`` to keep it.
    public var queuesWaiters: Bool { driver.queuesWaiters }

    /// How often a waiting candidate of `ttl` asks again to keep its place in the store's queue (see
    /// ``queuesWaiters``): once per ttl on SQLite, PostgreSQL and Redis, whose places last one and a half ttl after
    /// the last waiting acquire; every third of the ttl on etcd. Nil on a store without a queue.
    public func queueAskInterval(ttl: Duration) -> Duration? {
        driver.queuesWaiters ? ttl / max(1, driver.queueAsksPerTTL) : nil
    }

    /// ``queueAskInterval(ttl:)`` as asks per ttl (for the elector's machine).
    var queueAsksPerTTL: Int { driver.queueAsksPerTTL }

    /// Extends the term of `lease` to `ttl` from now and publishes `lease.metadata`.
    ///
    /// Atomic: succeeds only while the key is still in this term (same holder and token).
    /// - Returns: the renewed lease (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `invalidArgument`, `storeUnavailable`, `timeout`.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try BatonValidation.lease(lease)
        try BatonValidation.duration(ttl, "ttl")
        let renew = { [driver, core] in try await core.perform(.renew) { try await driver.renew(lease, ttl: ttl) } }
        guard let tracing = core.tracing else { return try await renew() }
        return try await tracing.withSpan(
            "baton.renew", attributes: spanAttributes(key: lease.key, holder: lease.holder, token: lease.token)
        ) { _ in try await renew() }
    }

    /// Ends the term of `lease` at once, so the next candidate can take the key without waiting for expiry.
    ///
    /// A compare-and-delete: a no-op if the key is no longer in this term. The key's token history is kept, so
    /// the next term still gets a larger token.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func release(_ lease: Lease) async throws {
        try BatonValidation.lease(lease)
        let release = { [driver, core] in try await core.perform(.release) { try await driver.release(lease) } }
        guard let tracing = core.tracing else { return try await release() }
        try await tracing.withSpan(
            "baton.release", attributes: spanAttributes(key: lease.key, holder: lease.holder, token: lease.token)
        ) { _ in try await release() }
    }

    /// Takes `holder` out of `key`'s queue of waiting candidates (see ``queuesWaiters``) at once, rather than when
    /// its place's time runs out: for a caller that stops waiting for the key before it got it. A release
    /// meanwhile then passes it over instead of starting a term for it that nobody uses until it expires.
    /// ``LeaderElector`` does this when it resigns or is cancelled while it waits.
    ///
    /// A term is left alone: a holder handed the key already releases it with its token. A no-op for a holder
    /// without a place, and on stores without a queue.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func leaveQueue(key: String, holder: String) async throws {
        try BatonValidation.name(key, "key")
        try BatonValidation.name(holder, "holder")
        guard driver.queuesWaiters else { return }
        try await core.perform(.leaveQueue) { [driver] in try await driver.leaveQueue(key: key, holder: holder) }
    }

    /// The current leader of `key`, or nil if the key is free or expired.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func current(key: String) async throws -> LeaderInfo? {
        try BatonValidation.name(key, "key")
        return try await core.perform(.current) { [driver] in try await driver.current(key: key) }
    }

    /// Leader observations for `key`: the current leader first, then each change (see
    /// ``LeaseStoreDriver/changes(key:)``). The sequence ends with an error when the store fails or is not
    /// running; subscribe again to go on. It ends when the consuming task is cancelled.
    /// - Throws: ``BatonError`` `invalidArgument` at once for a malformed key.
    public func changes(key: String) throws -> LeaderChanges {
        try BatonValidation.name(key, "key")
        if core.isRunning { return try driver.changes(key: key) }
        let (stream, continuation) = LeaderChanges.makeStream()
        let task = Task { [driver, core] in
            do {
                try await core.awaitRunning(.changes)
                for try await leader in try driver.changes(key: key) { continuation.yield(leader) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// The push form of ``changes(key:)``: the same observations, handed to `observer` one at a time as they
    /// come, then how the feed ended. On the stores that build their feed from wake-up signals (SQLite, Redis,
    /// PostgreSQL, the memory store) no task waits while nothing changes, so a process can follow many keys
    /// cheaply; `observer` must return quickly. Stop it with ``ChangeObservation/cancel()`` (or by dropping it).
    /// - Throws: ``BatonError`` `invalidArgument` at once for a malformed key.
    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        try BatonValidation.name(key, "key")
        if core.isRunning { return try driver.observe(key: key, observer) }
        return ChangeObservation.forwarding(try changes(key: key), to: observer)
    }

    // MARK: Rounds

    /// Claims one round of `system` for `candidate`. The first claim wins; the winner claiming again wins again
    /// (so a retry after a timeout never turns the winner into a loser). The record is kept for `retention`.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func claim(
        system: String, round: String, candidate: String, retention: Duration = RoundElection.defaultRetention
    ) async throws -> ClaimResult {
        try BatonValidation.round(system: system, round: round)
        try BatonValidation.name(candidate, "candidate")
        try BatonValidation.duration(retention, "retention")
        return try await core.perform(.claim) { [driver] in
            try await driver.claim(system: system, round: round, candidate: candidate, retention: retention)
        }
    }

    /// The winner of a round, or nil if it has not been claimed (or its record expired).
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func winner(system: String, round: String) async throws -> String? {
        try BatonValidation.round(system: system, round: round)
        return try await core.perform(.winner) { [driver] in try await driver.winner(system: system, round: round) }
    }

    /// Records the completion of a round under the rules of ``RoundRules/complete(_:by:system:round:)``.
    /// - Throws: ``BatonError`` `notWinner` (a named candidate that did not win), `alreadyCompleted` (another
    ///   identity completed first), `invalidArgument`, `storeUnavailable`, `timeout`.
    public func complete(
        system: String, round: String, by completer: Completer, retention: Duration = RoundElection.defaultRetention
    ) async throws {
        try BatonValidation.round(system: system, round: round)
        try BatonValidation.name(completer.identity, "completer")
        try BatonValidation.duration(retention, "retention")
        try await core.perform(.complete) { [driver] in
            try await driver.complete(system: system, round: round, by: completer, retention: retention)
        }
    }

    /// The identity whose completion of the round is recorded, or nil.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func completion(system: String, round: String) async throws -> String? {
        try BatonValidation.round(system: system, round: round)
        return try await core.perform(.completion) { [driver] in
            try await driver.completion(system: system, round: round)
        }
    }

    // MARK: Presence

    /// Marks `member` of `group` alive for `ttl`.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try BatonValidation.name(group, "group")
        try BatonValidation.name(member, "member")
        try BatonValidation.duration(ttl, "ttl")
        try await core.perform(.heartbeat) { [driver] in
            try await driver.heartbeat(group: group, member: member, ttl: ttl)
        }
    }

    /// Removes `member` from `group` at once.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func leave(group: String, member: String) async throws {
        try BatonValidation.name(group, "group")
        try BatonValidation.name(member, "member")
        try await core.perform(.leave) { [driver] in try await driver.leave(group: group, member: member) }
    }

    /// The members of `group` whose last heartbeat has not expired, sorted.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func members(group: String) async throws -> [String] {
        try BatonValidation.name(group, "group")
        return try await core.perform(.members) { [driver] in try await driver.members(group: group) }
    }
}
