import ServiceLifecycle

/// What a store implements so Baton can elect over it: leases for continuous leadership, rounds for one-shot
/// elections, and presence for "who is taking part", each as an atomic primitive of the store.
///
/// Users never call a driver directly: they hold a ``LeaseStore``, the front that wraps a driver and does what
/// every store would otherwise repeat — checks every argument before any I/O, bounds every request by a deadline,
/// maps unknown errors, records metrics, and refuses calls with a clear error while the store is not running.
/// A driver therefore receives only well-formed arguments (names of 1–256 bytes of UTF-8 without control
/// characters, metadata of at most 4 KiB, durations of 1 ms to 366 days) and needs no validation of its own.
///
/// ## Lifecycle
///
/// A driver is a ServiceLifecycle `Service`. Its background work — connections, listeners, keep-alives,
/// sweepers, pollers — starts in `run()` and nowhere else (not in `init`, not lazily on a first call), and ends
/// when `run()` returns: on cancellation of its task or at graceful shutdown. Operations called after `run()`
/// has started wait, within their deadline, until the store is ready; operations after it ended throw
/// ``BatonError/Code/storeUnavailable``.
///
/// ## The contract every store keeps
///
/// - **Atomic on the store.** Every operation is one compare-and-set, transaction or server-side script. No
///   operation reads and then writes from the client, so two callers can never both succeed where only one may.
/// - **Fencing tokens.** Every new term of a key gets a token strictly greater than every token the key had
///   before, also after the key was released or expired. Renewals keep the token.
/// - **Expiry by one clock.** A store judges expiry by a clock of its own (the server's, or one host's
///   monotonic clock), never by comparing wall clocks of different hosts. A term granted by a request sent at
///   local time `t0` with time to live `ttl` never expires before `t0 + ttl`. A store that can start a term
///   without a request (etcd, Redis and PostgreSQL, for a term handed over on release; see `HandedTerms`)
///   answers with a lease whose ``Lease/ttl`` is shorter than asked: the time the term is sure to last, counted
///   from the call. It does not do so from what its messages or earlier reads showed when the acquire runs with
///   `HandedTerms.holderMayAskElsewhere` set (the holder may have taken and released that term through another
///   instance since): then it asks the server.
/// - **Terms belong to the store.** Any driver instance on the same store renews, releases and observes a term
///   given its key, holder and token.
/// - **Errors.** "Held by someone else" is an answer (``AcquireResult/held(by:)``, ``BatonError/Code/lost``);
///   "the store failed" is ``BatonError/Code/storeUnavailable`` or ``BatonError/Code/timeout``, after which the
///   outcome is unknown and the call may be retried with the same arguments. A driver maps its client's errors
///   to ``BatonError`` with messages that never contain credentials; anything else reaching the front becomes
///   `storeUnavailable` naming only the error's type.
/// - **Cancellation.** Cancelling the calling task abandons the wait for an answer and throws
///   `CancellationError` or a ``BatonError``; the store may or may not have applied the operation (as with a
///   timeout), so callers retry or let the ttl run out. The front cancels an operation at its deadline.
///
/// ## Listings
///
/// ``leases(prefix:limit:)`` and ``rounds(system:limit:)`` answer operators' "which keys are held, by whom,
/// until when?" and "who ran the recent rounds?". They read, never write, and need not be atomic snapshots;
/// the front checks the prefix, system and limit, asks for one entry more than the limit (to tell whether the
/// listing was cut short), sorts and trims.
///
/// ## Growing the protocol
///
/// New operations arrive as new requirements with default implementations, so a driver written against an earlier
/// version keeps compiling and says clearly what it cannot do: listings throw ``BatonError/Code/invalidArgument``
/// ("not supported by this store"); waiter queues default to none (``queuesWaiters`` false, ``leaveQueue(key:holder:)``
/// a no-op, a waiting acquire answered as any other). Semaphores and sharded leadership ask nothing more of a
/// driver: they are built from keys, each with its own election.
///
/// `BatonTestKit`'s conformance suite checks all of this for any driver, through a ``LeaseStore``.
public protocol LeaseStoreDriver: Service {
    /// A short, lowercase name of the kind of store (`sqlite`, `redis`), for errors, logs and metrics.
    var storeName: String { get }

    /// Whether operations need `run()` to be going. True for every store with connections or files; the
    /// in-memory store answers without it.
    var needsRun: Bool { get }

    /// Where the front runs this driver's requests, or nil for Swift's global executor.
    ///
    /// The front runs each request in a task of its own, so that the request's deadline can cancel it without
    /// cancelling the caller. A driver whose requests are answered on one NIO event loop gives that loop as a
    /// task executor: the request then starts and is answered on the loop's thread, and costs no more thread
    /// switches than a call made without a deadline.
    var requestExecutor: (any TaskExecutor)? { get }

    /// Whether every wait of this driver's requests ends soon once the request is aborted: its deadline passed or
    /// its caller was cancelled (`RequestAbort`, of `@_spi(BatonStoreKit)`: each wait registers with
    /// `RequestAbort.whileWaiting`, for example failing the promise it waits for). The front then runs the
    /// driver's requests in the caller's own task, which saves a task and two thread switches per request, and
    /// relies on the driver to end a request at its deadline. False (the default): each request runs in a task
    /// of its own, which the front abandons at the deadline whatever the driver does.
    var honoursRequestAbort: Bool { get }

    // MARK: Leases

    /// Takes `key` for `holder` if it is free or expired, or renews it if `holder` already holds it.
    ///
    /// A free or expired key starts a new term with a new, larger fencing token; the holder's own live term
    /// keeps its token and gets a new time to live and the given metadata.
    /// - Returns: ``AcquireResult/acquired(_:)`` with the lease, or ``AcquireResult/held(by:)`` with the leader.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`, `unauthorized`.
    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult

    /// Whether a holder refused by an acquire can keep a place in a queue of the store's own (SQLite's, PostgreSQL's,
    /// etcd's election queue, Redis's on one server): then a waiting candidate asks again
    /// (``acquire(key:holder:ttl:metadata:waiting:)`` with `waiting`) at least ``queueAsksPerTTL`` times per ttl to
    /// keep its place, and leaves the queue within one and a half ttl (etcd: one ttl) once it stops.
    /// False unless the driver says otherwise.
    var queuesWaiters: Bool { get }

    /// On a store that queues waiting candidates: how many times per ttl a waiting candidate asks again to keep
    /// its place. 1 where a place lasts one and a half ttl after the last waiting acquire (SQLite, PostgreSQL,
    /// Redis), so that one ask per ttl keeps it with half a ttl to spare; 3 (the default) where it lasts one ttl
    /// (etcd, whose place is a lease that becomes the term's if the candidate leads).
    var queueAsksPerTTL: Int { get }

    /// An acquire that says whether its caller waits for the key, asking again until it gets it (an elector, an
    /// HTTP long poll).
    ///
    /// On a store that queues waiting candidates (``queuesWaiters``), a waiting acquire that is refused keeps (or
    /// takes) the holder's place in the queue for about `ttl`, and each further waiting acquire keeps it again;
    /// an acquire that does not wait and is refused leaves no trace in the store. Every other store answers it as
    /// ``acquire(key:holder:ttl:metadata:)`` (the default implementation).
    func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult

    /// Takes `holder` out of `key`'s queue of waiting candidates at once, instead of when its place's time runs
    /// out: a candidate that stops waiting (an elector that resigns or is cancelled before it leads), so that a
    /// release meanwhile passes it over instead of starting a term nobody will use.
    ///
    /// Leaves a term alone: a holder that leads (or was handed the key meanwhile) releases it with its token, or
    /// the term expires. A no-op if the holder has no place, and on stores without a queue (the default).
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    func leaveQueue(key: String, holder: String) async throws

    /// Extends the term of `lease` to `ttl` from now and publishes `lease.metadata`.
    ///
    /// Atomic: succeeds only while the key is still in this term (same holder and token).
    /// - Returns: the renewed lease (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `storeUnavailable`, `timeout`.
    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease

    /// Ends the term of `lease` at once, so the next candidate can take the key without waiting for expiry.
    ///
    /// A compare-and-delete: a no-op if the key is no longer in this term. The key's token history is kept, so
    /// the next term still gets a larger token.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    func release(_ lease: Lease) async throws

    /// The current leader of `key`, or nil if the key is free or expired.
    func current(key: String) async throws -> LeaderInfo?

    /// Leader observations for `key`: the current leader first, then each change (a new term, a release, an
    /// expiry, new metadata). Consecutive equal observations are not repeated; a burst of changes may be
    /// coalesced to the latest.
    ///
    /// A store that queues waiting candidates (``queuesWaiters``) reports the head of its queue as soon as it is
    /// the head, before its holder has taken the term: it is the next leader, and only its holder can take the
    /// key. An elector (or a long poll) that sees its own holder named acquires; one that sees another holder
    /// keeps waiting. So a release wakes the next candidate only.
    ///
    /// Stores with push deliver changes as they happen; others poll behind the same API. The sequence ends with
    /// an error when the store fails; subscribe again to go on. It ends when the consuming task is cancelled.
    func changes(key: String) throws -> LeaderChanges

    /// The push form of ``changes(key:)``: the same observations handed to `observer` as they come, then the
    /// end. A store whose feed needs no task while nothing changes implements it (`LeaderChangeFeed` does);
    /// the default runs a task that reads ``changes(key:)``. The service follows its watchers this way.
    func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation

    /// The held leases whose key starts with `prefix` (byte by byte; empty: every key), each with its leader as
    /// ``current(key:)`` would report it (holder, token, metadata, ttl and time left as far as the store can
    /// tell), for listings.
    ///
    /// Released and expired terms are not listed. The answer holds at least the first `limit` such leases in
    /// the byte order of their keys' UTF-8 (``ListingLimits/precedes(_:_:)``), or all of them if there are
    /// fewer; it may hold more, in any order: the front sorts and trims. A listing need not be one atomic
    /// snapshot of the store (a term may start or end while it is read), but each lease listed was held when
    /// the store read it.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    func leases(prefix: String, limit: Int) async throws -> [HeldLease]

    // MARK: Rounds

    /// Claims one round of `system` for `candidate`. The first claim wins; the winner claiming again wins again
    /// (so a retry after a timeout never turns the winner into a loser).
    ///
    /// The record is kept for `retention`, after which the round may be claimed afresh.
    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult

    /// The winner of a round, or nil if it has not been claimed (or its record expired).
    func winner(system: String, round: String) async throws -> String?

    /// Records the completion of a round under the rules of ``RoundRules/complete(_:by:system:round:)``.
    ///
    /// - Throws: ``BatonError`` `notWinner` (a named candidate that did not win), `alreadyCompleted` (another
    ///   identity completed first), `storeUnavailable`, `timeout`.
    func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws

    /// The identity whose completion of the round is recorded, or nil.
    func completion(system: String, round: String) async throws -> String?

    /// The rounds of `system` whose records are kept (not past their retention), each with its winner and
    /// completer, for listings.
    ///
    /// The answer holds at least the first `limit` such rounds in descending byte order of their names' UTF-8,
    /// or all of them if there are fewer; it may hold more, in any order: the front sorts and trims.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    func rounds(system: String, limit: Int) async throws -> [RoundSummary]

    // MARK: Presence

    /// Marks `member` of `group` alive for `ttl`.
    func heartbeat(group: String, member: String, ttl: Duration) async throws

    /// Removes `member` from `group` at once.
    func leave(group: String, member: String) async throws

    /// The members of `group` whose last heartbeat has not expired, sorted.
    func members(group: String) async throws -> [String]
}

extension LeaseStoreDriver {
    /// True: the driver needs `run()`.
    public var needsRun: Bool { true }

    /// Nil: requests run on Swift's global executor.
    public var requestExecutor: (any TaskExecutor)? { nil }

    /// False: each request runs in a task of its own.
    public var honoursRequestAbort: Bool { false }

    /// Throws ``BatonError/Code/invalidArgument``: a driver that does not implement listings says so.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        throw BatonError.invalidArgument("listing leases is not supported by the \(storeName) store")
    }

    /// Throws ``BatonError/Code/invalidArgument``: a driver that does not implement listings says so.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        throw BatonError.invalidArgument("listing rounds is not supported by the \(storeName) store")
    }

    /// A task that hands each element of ``changes(key:)`` to `observer`.
    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        ChangeObservation.forwarding(try changes(key: key), to: observer)
    }

    /// False: the store keeps no queue of waiting candidates.
    public var queuesWaiters: Bool { false }

    /// Three: a place lasts one ttl after the last waiting acquire.
    public var queueAsksPerTTL: Int { 3 }

    /// Nothing to leave: a store without a queue keeps no place for a refused candidate.
    public func leaveQueue(key: String, holder: String) async throws {}

    /// The plain acquire: a store without a queue of waiting candidates answers waiting and other callers alike.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: metadata)
    }
}
