@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A ``LeaseStore`` in a PostgreSQL database: for teams that run PostgreSQL and nothing else.
///
/// ## Whose clock decides expiry
///
/// The database server's: every statement reads `clock_timestamp()` once and judges expiry by it, in the same
/// statement that writes. No host's clock is ever compared with another's, so candidates on hosts with wrong
/// clocks still agree. The server receives a request after the client sent it, so a term granted by a request
/// sent at `t0` never ends before `t0 + ttl` — as long as the server's own clock is not stepped backwards or
/// forwards by more than the elector's safety margin while a term runs (PostgreSQL offers no monotonic clock
/// in SQL; keep the server's clock disciplined by NTP slewing, as is usual).
///
/// ## Atomicity
///
/// - `acquire` is one `INSERT … ON CONFLICT (key) DO UPDATE … RETURNING`: the row lock taken by the conflict
///   serializes concurrent acquirers, and each sees the row as the previous one left it. A free or expired key
///   gets a new term with the row's token plus one; the holder's own live term is renewed with its token; any
///   other holder's live term is left unchanged and returned, so the refused caller learns who won.
/// - `renew` and `release` are one `UPDATE` each, guarded by key, holder and token (and, for renew, expiry).
/// - Rounds run in one transaction: the round's row is locked (`SELECT … FOR UPDATE`), the same
///   ``RoundRules`` as every store decide, and the outcome is written before `COMMIT`.
/// - Presence is one statement per operation.
///
/// ## Fencing tokens
///
/// Each key has one row for ever: a release or an expiry clears the holder but keeps `token`, and the next term
/// gets `token + 1` under the row lock. Tokens thus never go back, also after a database restart (a committed
/// term is durable) — unless someone deletes rows by hand.
///
/// ## Changes: LISTEN/NOTIFY
///
/// A trigger on `baton_leases` calls `pg_notify('baton_changes_<schema>', key)` whenever a row gets a new term, a
/// new holder (a release sets none) or new metadata, whoever wrote it; PostgreSQL delivers it at commit. Each store
/// instance opens one dedicated connection that `LISTEN`s on that channel (at the first ``changes(key:)``) and
/// wakes the subscribers of the notified key, which read ``current(key:)`` again. Expiries need no write: each
/// subscription reads again when the term's remaining time (as the server computed it) has passed. When the
/// listening connection is lost, every subscriber is woken (its read reports the store's failure, which ends its
/// sequence), and after reconnecting, every subscriber is woken again, so no change is missed.
///
/// ## Table layout
///
/// In the configured schema (default `public`), readable with `psql`:
///
/// ```sql
/// CREATE TABLE baton_meta (name text PRIMARY KEY, value text NOT NULL);  -- 'schema_version' = '1'
/// CREATE TABLE baton_leases (           -- one row per key ever acquired; never deleted
///     key        text COLLATE "C" PRIMARY KEY,
///     token      bigint NOT NULL,       -- the last fencing token issued for the key
///     holder     text COLLATE "C",      -- NULL once released; the term is live while
///     metadata   text,                  --   holder IS NOT NULL AND expires_at > clock_timestamp()
///     ttl_ms     bigint,
///     expires_at timestamptz,           -- by the server's clock
///     updated_at timestamptz NOT NULL); -- the last write, for operators
/// CREATE TABLE baton_rounds (
///     system text COLLATE "C", round text COLLATE "C", PRIMARY KEY (system, round),
///     winner text COLLATE "C", completed_by text COLLATE "C",
///     expires_at timestamptz NOT NULL); -- end of retention ('-infinity': a placeholder, no record)
/// CREATE TABLE baton_presence (
///     group_name text COLLATE "C", member text COLLATE "C", PRIMARY KEY (group_name, member),
///     expires_at timestamptz NOT NULL);
/// -- plus indexes on expires_at, the function baton_leases_notify() and its trigger on baton_leases.
/// ```
///
/// For example, the live leaders:
/// `SELECT key, holder, token, metadata FROM baton_leases WHERE expires_at > clock_timestamp();`.
/// Names are compared byte for byte (`COLLATE "C"`). Expired round and presence rows are deleted by claims
/// and heartbeats, at most once a minute per store instance.
///
/// ## Errors and cancellation
///
/// Every argument is checked before any I/O (``BatonError/Code/invalidArgument``; PostgreSQL's `text` cannot
/// hold NUL, so metadata with a NUL byte is refused too). A refused password is
/// ``BatonError/Code/unauthorized``; any other failure of the server or the connection is
/// ``BatonError/Code/storeUnavailable``, and an operation that did not finish within
/// ``Configuration/operationTimeout`` (waiting for a connection included) is ``BatonError/Code/timeout``.
/// Messages name the URL with its password redacted, never the password. Cancelling an operation abandons it
/// like a timeout does: the statement may or may not have been applied.
///
/// ## Lifecycle
///
/// ``init(url:configuration:logger:)`` connects once (so a wrong password or an unreachable server fails
/// there), creates the tables if needed, and starts the store's connection pool in a task that the store owns.
/// The `LISTEN` connection's task starts at the first ``changes(key:)``. ``close()`` ends the subscriptions
/// and both tasks and closes every connection; call it when done. A store that is never closed is stopped when
/// it is deinitialized.
public final class PostgresLeaseStore: LeaseStoreDriver {
    /// `postgres`.
    public var storeName: String { "postgres" }
    /// False for now: the store still opens its connections as it is made, so it answers before ``run()``.
    public var needsRun: Bool { false }

    /// Runs until cancelled or shut down gracefully, then closes the store.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    /// The configuration the store was opened with (with the URL's `schema`, if it named one).
    public let configuration: Configuration

    /// The store URL with its password redacted.
    public let redactedURL: String

    private let schema: PostgresSchema
    private let client: PostgresClient
    private let listener: PostgresChangeListener
    private let logger: Logger
    private let signals = ChangeSignals()
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var clientTask: Task<Void, Never>?
        var listenerTask: Task<Void, Never>?
        var lastSweep: ContinuousClock.Instant?
    }

    /// How often an instance deletes expired round and presence rows (during a claim or a heartbeat).
    private static let sweepInterval: Duration = .seconds(60)

    /// Connects to the database at `url`, creates Baton's tables if they are missing (idempotent; any number of
    /// processes may do it at once), and starts the connection pool.
    ///
    /// - Parameters:
    ///   - url: `postgres://[user[:password]@]host[:port][/database][?sslmode=...]` (also `postgresql://`); see
    ///     the query items below. The password never appears in messages or logs.
    ///   - configuration: schema, timeouts and pool size. A `schema=NAME` query item in the URL overrides
    ///     ``Configuration/schema``.
    ///   - logger: where the store reports what it cannot report through an operation's error (the change
    ///     listener's reconnections), at debug level.
    ///
    /// Query items, as in libpq: `sslmode` (`disable`, `allow`, `prefer` — the default —, `require`,
    /// `verify-ca`, `verify-full`; only the last two check the server's certificate), `sslrootcert` (PEM file of
    /// trusted certificates; default the system's), `sslcert` and `sslkey` (a client certificate), `schema`,
    /// `application_name` (default `baton`).
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed URL or configuration; `unauthorized` if the
    ///   server refuses the credentials; `storeUnavailable` if the server cannot be reached or the tables cannot
    ///   be set up (or were written by a newer Baton); `timeout` if connecting takes longer than
    ///   ``Configuration/connectTimeout``.
    public init(
        url: StoreURL,
        configuration: Configuration = .init(),
        logger: Logger = Logger(label: "baton.postgres")
    ) async throws {
        let settings = try PostgresConnectionSettings(url)
        var configuration = configuration
        if let schema = settings.schema { configuration.schema = schema }
        try configuration.validate()
        let connectionConfiguration = try settings.connectionConfiguration(configuration)
        let clientConfiguration = try settings.clientConfiguration(configuration)
        let redactedURL = settings.redactedURL
        let schema = PostgresSchema(schema: configuration.schema)

        do {
            let connection = try await PostgresConnection.connect(
                configuration: connectionConfiguration,
                id: 0,
                logger: logger
            )
            do {
                try await schema.prepare(connection, logger: logger)
            } catch {
                try? await connection.close()
                throw error
            }
            try? await connection.close()
        } catch {
            throw Self.storeError(error, operation: "opening the store", url: redactedURL)
        }

        self.configuration = configuration
        self.redactedURL = redactedURL
        self.schema = schema
        self.logger = logger
        // The pool logs every failed connection attempt at info level; the store reports failures through the
        // operations' errors instead, so the pool's background messages are shown from warning level up.
        var backgroundLogger = logger
        backgroundLogger.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(configuration: clientConfiguration, backgroundLogger: backgroundLogger)
        self.listener = PostgresChangeListener(
            settings: connectionConfiguration,
            channel: schema.channel,
            keepAlive: configuration.listenerKeepAlive,
            keepAliveTimeout: configuration.listenerKeepAliveTimeout,
            signals: signals,
            logger: logger,
            redactedURL: redactedURL
        )
        let client = client
        let task = Task { await client.run() }
        state.withLock { $0.clientTask = task }
    }

    deinit {
        // A safety net for a store that was never closed: stop the pool and the listener.
        let tasks = state.withLock { [$0.clientTask, $0.listenerTask] }
        for task in tasks { task?.cancel() }
    }

    // MARK: Leases

    /// Takes `key` for `holder` if it is free or expired (a new term, with the key's last token plus one), or
    /// renews it if `holder` holds it (same token, new ttl and metadata).
    ///
    /// One `INSERT … ON CONFLICT DO UPDATE` statement, judged by the server's clock. A new term or new metadata
    /// notifies every store's ``changes(key:)``.
    /// - Returns: ``AcquireResult/acquired(_:)``, or ``AcquireResult/held(by:)`` with the leader and its time left.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`, `unauthorized`.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try Self.validate(metadata: metadata)
        let query = schema.acquire(
            key: key,
            holder: holder,
            ttlMilliseconds: Self.milliseconds(ttl),
            metadata: metadata
        )
        let row = try await perform("acquire of \(key)") { connection, logger in
            try await Self.leaseRows(connection.query(query, logger: logger)).first
        }
        guard let row else {
            throw BatonError.storeUnavailable("acquire of \(key) on \(redactedURL) returned no row")
        }
        if row.holder == holder {
            return .acquired(Lease(key: key, holder: holder, token: row.token, ttl: ttl, metadata: row.metadata))
        }
        return .held(by: row.info)
    }

    /// Extends the term of `lease` to `ttl` from now (by the server's clock) and publishes `lease.metadata`, if
    /// the key is still in that term (same holder and token, not expired).
    ///
    /// One `UPDATE` statement. New metadata notifies every store's ``changes(key:)``.
    /// - Returns: the lease with the new ttl (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `invalidArgument`, `storeUnavailable`, `timeout`.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try Self.validate(metadata: lease.metadata)
        let query = schema.renew(
            key: lease.key,
            holder: lease.holder,
            token: lease.token,
            ttlMilliseconds: Self.milliseconds(ttl),
            metadata: lease.metadata
        )
        let renewed = try await perform("renew of \(lease.key)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
        guard renewed > 0 else { throw BatonError.lost(key: lease.key) }
        var result = lease
        result.ttl = ttl
        return result
    }

    /// Ends the term of `lease` at once if the key is still in that term (same holder and token); a no-op
    /// otherwise. The row keeps its token, so the next term gets a larger one.
    ///
    /// One `UPDATE` statement. A release notifies every store's ``changes(key:)``.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func release(_ lease: Lease) async throws {
        let query = schema.release(key: lease.key, holder: lease.holder, token: lease.token)
        try await perform("release of \(lease.key)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
    }

    /// The current leader of `key` with its time left by the server's clock, or nil if the key is free or
    /// expired.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func current(key: String) async throws -> LeaderInfo? {
        try await current(key: key, timeout: configuration.operationTimeout)
    }

    /// ``current(key:)`` within `timeout` (the connection is closed if it passes).
    private func current(key: String, timeout: Duration) async throws -> LeaderInfo? {
        let query = schema.current(key: key)
        return try await perform("read of \(key)", timeout: timeout) { connection, logger in
            try await Self.leaseRows(connection.query(query, logger: logger)).first?.info
        }
    }

    /// Leader observations for `key`, pushed by `LISTEN`/`NOTIFY` (see ``PostgresLeaseStore``): the current
    /// leader first, then each change. Starts this store's listening connection if it is not running yet.
    ///
    /// The sequence ends with the store's error when a read fails (the database is down: subscribe again
    /// later), and ends when the consuming task is cancelled or the store is closed.
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key; `storeUnavailable` if the store is closed.
    public func changes(key: String) throws -> LeaderChanges {
        let subscription = signals.subscribe(key)
        try startListening()
        return LeaderChangeFeed.make(
            clock: BatonClock(ContinuousClock()),
            pollInterval: configuration.changesPollInterval,
            signals: subscription
        ) { [self] in
            // A feed's read that takes longer than a check of the listener's connection would is taken for a
            // connection that died silently (a pool connection leased before its own check found it dead): the
            // connection is closed and the feed fails, so its elector polls meanwhile and subscribes again,
            // instead of sleeping through the operation timeout.
            try await current(key: key, timeout: feedReadTimeout)
        }
    }

    // MARK: Rounds

    /// Claims a round for `candidate`: the first claim wins, the winner claiming again wins again.
    ///
    /// One transaction that locks the round's row and applies ``RoundRules/claim(_:candidate:)``. A new record
    /// is kept for `retention` by the server's clock.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult
    {
        let schema = schema
        let retentionMilliseconds = Self.milliseconds(retention)
        let result = try await transaction("claim of round \(system)/\(round)") { connection, logger in
            let existing = try await Self.lockRound(schema, connection, logger, system: system, round: round)
            let (result, record) = RoundRules.claim(existing, candidate: candidate)
            if record != existing {
                try await connection.query(
                    schema.writeRound(
                        system: system,
                        round: round,
                        record: record,
                        retentionMilliseconds: retentionMilliseconds
                    ),
                    logger: logger
                )
            }
            return result
        }
        try await sweepIfDue()
        return result
    }

    /// The winner of a round, or nil if it has not been claimed or its record expired.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func winner(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.winner
    }

    /// Records the completion of a round under ``RoundRules/complete(_:by:system:round:)``, in one transaction
    /// that locks the round's row. A record created by the completion is kept for `retention`; an existing one
    /// keeps its expiry.
    /// - Throws: ``BatonError`` `notWinner`, `alreadyCompleted`, `invalidArgument`, `storeUnavailable`, `timeout`.
    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        let schema = schema
        let retentionMilliseconds = Self.milliseconds(retention)
        let outcome = try await transaction("completion of round \(system)/\(round)") {
            connection,
            logger -> Result<Void, BatonError> in
            let existing = try await Self.lockRound(schema, connection, logger, system: system, round: round)
            switch RoundRules.complete(existing, by: completer, system: system, round: round) {
            case .failure(let error):
                return .failure(error)
            case .success(let record):
                if record != existing {
                    try await connection.query(
                        schema.writeRound(
                            system: system,
                            round: round,
                            record: record,
                            retentionMilliseconds: existing == nil ? retentionMilliseconds : nil
                        ),
                        logger: logger
                    )
                }
                return .success(())
            }
        }
        try outcome.get()
    }

    /// The identity whose completion of the round is recorded, or nil.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func completion(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.completedBy
    }

    // MARK: Presence

    /// Marks `member` of `group` alive for `ttl` by the server's clock (one upsert).
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        let query = schema.heartbeat(group: group, member: member, ttlMilliseconds: Self.milliseconds(ttl))
        try await perform("heartbeat of \(member) in \(group)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
        try await sweepIfDue()
    }

    /// Removes `member` from `group` at once.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func leave(group: String, member: String) async throws {
        let query = schema.leave(group: group, member: member)
        try await perform("leave of \(member) from \(group)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
    }

    /// The members of `group` whose last heartbeat has not expired, sorted as Swift sorts strings.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    public func members(group: String) async throws -> [String] {
        let query = schema.members(group: group)
        let members = try await perform("members of \(group)") { connection, logger in
            var members: [String] = []
            for try await member in try await connection.query(query, logger: logger).decode(String.self) {
                members.append(member)
            }
            return members
        }
        return members.sorted()
    }

    // MARK: Lifecycle

    /// Ends every ``changes(key:)`` sequence, stops the listening connection and the pool, and waits for them.
    /// Further calls fail with ``BatonError/Code/storeUnavailable``. Closing twice is a no-op.
    public func close() async throws {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            if state.closed { return [] }
            state.closed = true
            defer {
                state.listenerTask = nil
                state.clientTask = nil
            }
            return [state.listenerTask, state.clientTask].compactMap { $0 }
        }
        signals.finishAll()
        for task in tasks {
            task.cancel()
            await task.value
        }
    }

    // MARK: Helpers

    private func startListening() throws(BatonError) {
        let listener = listener
        let closed = state.withLock { state -> Bool in
            if state.closed { return true }
            if state.listenerTask == nil {
                state.listenerTask = Task { await listener.run() }
            }
            return false
        }
        if closed { throw .storeUnavailable("the PostgreSQL store \(redactedURL) is closed") }
    }

    private func roundRecord(system: String, round: String) async throws -> RoundRecord? {
        let query = schema.readRound(system: system, round: round)
        return try await perform("read of round \(system)/\(round)") { connection, logger in
            for try await (winner, completedBy) in try await connection.query(query, logger: logger)
                .decode((String?, String?).self)
            {
                return RoundRecord(winner: winner, completedBy: completedBy)
            }
            return nil
        }
    }

    /// Locks the round's row (creating a placeholder first) and returns its live record, or nil.
    private static func lockRound(
        _ schema: PostgresSchema,
        _ connection: PostgresConnection,
        _ logger: Logger,
        system: String,
        round: String
    ) async throws -> RoundRecord? {
        // The row can vanish between the insert and the lock: a sweep in another session may delete an expired
        // record and commit while this one waits for its lock. Then nothing is locked, and a write would update
        // no row, so insert and lock again until a row is held.
        for _ in 0..<8 {
            try await connection.query(schema.ensureRound(system: system, round: round), logger: logger)
            let rows = try await connection.query(schema.lockRound(system: system, round: round), logger: logger)
            for try await (winner, completedBy, live) in rows.decode((String?, String?, Bool).self) {
                return live ? RoundRecord(winner: winner, completedBy: completedBy) : nil
            }
        }
        throw BatonError.storeUnavailable("round \(system)/\(round) kept being deleted while it was being locked")
    }

    /// Deletes expired round and presence rows, at most once per ``sweepInterval`` per instance.
    private func sweepIfDue() async throws {
        let now = ContinuousClock.now
        let due = state.withLock { state -> Bool in
            if let last = state.lastSweep, last.duration(to: now) < Self.sweepInterval { return false }
            state.lastSweep = now
            return true
        }
        guard due else { return }
        let queries = schema.sweep
        try await perform("sweep of expired rounds and heartbeats") { connection, logger in
            for query in queries { try await connection.query(query, logger: logger) }
            return 0
        }
    }

    /// A row of `baton_leases` as the statements return it.
    private struct LeaseRow: Sendable {
        var token: Int64
        var holder: String?
        var metadata: String?
        var ttlMilliseconds: Int64?
        var remainingMicroseconds: Int64?

        var info: LeaderInfo {
            LeaderInfo(
                holder: holder ?? "",
                token: token,
                metadata: metadata,
                ttl: ttlMilliseconds.map { .milliseconds($0) },
                remaining: remainingMicroseconds.map { .microseconds($0) }
            )
        }
    }

    private static func leaseRows(_ rows: PostgresRowSequence) async throws -> [LeaseRow] {
        var result: [LeaseRow] = []
        for try await (token, holder, metadata, ttl, remaining) in rows.decode(
            (Int64, String?, String?, Int64?, Int64?).self
        ) {
            result.append(
                LeaseRow(
                    token: token,
                    holder: holder,
                    metadata: metadata,
                    ttlMilliseconds: ttl,
                    remainingMicroseconds: remaining
                )
            )
        }
        return result
    }

    /// Runs `body` in a transaction on one connection of the pool (see ``perform(_:_:)``).
    private func transaction<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        try await perform(operation) { connection, logger in
            try await connection.withTransaction(logger: logger) { connection in
                try await body(connection, logger)
            }
        }
    }

    /// The outcome of the race between an operation and its deadline.
    private enum Outcome<T: Sendable>: Sendable {
        case done(T)
        case timedOut
    }

    /// Runs `body` on one connection of the pool within ``Configuration/operationTimeout``, mapping errors to
    /// ``BatonError``. When the deadline passes first, the connection in use (if one was leased) is closed, which
    /// fails its query, and the wait for a connection is cancelled.
    @discardableResult
    private func perform<T: Sendable>(
        _ operation: String,
        timeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        if state.withLock({ $0.closed }) {
            throw BatonError.storeUnavailable("\(operation) failed: the PostgreSQL store \(redactedURL) is closed")
        }
        let client = client
        let logger = logger
        let timeout = timeout ?? configuration.operationTimeout
        let leased = LeasedConnection()
        do {
            return try await withThrowingTaskGroup(of: Outcome<T>.self) { group in
                group.addTask {
                    let value = try await client.withConnection { connection in
                        leased.set(connection)
                        defer { leased.set(nil) }
                        return try await body(connection, logger)
                    }
                    return .done(value)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                }
                guard let first = try await group.next() else { throw CancellationError() }
                switch first {
                case .done(let value):
                    group.cancelAll()
                    return value
                case .timedOut:
                    leased.closeIfLeased()
                    group.cancelAll()
                    throw BatonError.timeout(
                        "\(operation) on the PostgreSQL store \(redactedURL) did not finish within \(timeout)"
                    )
                }
            }
        } catch {
            throw Self.storeError(error, operation: operation, url: redactedURL)
        }
    }

    /// How long a change feed's read may take: the operation timeout, or less, as long as a check of the
    /// listener's connection (interval and timeout).
    private var feedReadTimeout: Duration {
        min(configuration.operationTimeout, configuration.listenerKeepAlive + configuration.listenerKeepAliveTimeout)
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        max(duration.batonMilliseconds, 1)
    }

    private static func validate(metadata: String?) throws(BatonError) {
        if let metadata, metadata.utf8.contains(0) {
            throw .invalidArgument("metadata contains a NUL character, which PostgreSQL text cannot hold")
        }
    }
}

/// The connection an operation has leased, so that its deadline can close it.
private final class LeasedConnection: Sendable {
    private let connection = Mutex<PostgresConnection?>(nil)

    func set(_ value: PostgresConnection?) { connection.withLock { $0 = value } }

    func closeIfLeased() {
        if let leased = connection.withLock({ $0 }) { let _: EventLoopFuture<Void> = leased.close() }
    }
}
