@_spi(BatonStoreKit) import Baton
import Logging
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// A ``LeaseStore`` in one SQLite file that any number of processes of one host share: the zero-setup store.
///
/// ## Sharing one file
///
/// Every process (and every store instance in one process) opens its own connection to the file. The file is
/// in WAL mode, so readers never wait for the writer. Every operation is atomic on the file: one SQL statement,
/// or a `BEGIN IMMEDIATE … COMMIT` transaction that takes SQLite's write lock first and then reads, decides
/// (with the same ``RoundRules`` as every store) and writes; on any error it is rolled back. A connection that
/// finds the write lock taken waits up to ``Configuration/busyTimeout`` and then fails with
/// ``BatonError/Code/timeout``. Within one store instance, operations run one at a time, so statements of two
/// tasks never interleave inside a transaction.
///
/// Writes are committed in groups: the operations of one instance that arrive while others run wait for the
/// next turn, which runs their writes in one transaction, each in a savepoint of its own (so each stays atomic,
/// and one that fails is rolled back alone), and then their reads. One commit, and so one sync of the disk,
/// serves every write of a turn: a process holding thousands of leases is bounded by SQLite's statements, not by
/// the disk's sync rate.
///
/// ## Whose clock decides expiry
///
/// The host's `CLOCK_BOOTTIME`, read after the write lock is taken, so that a term granted by a request sent at
/// `t0` never ends before `t0 + ttl`. All processes of the host share that clock. It restarts at boot, so each
/// lease and presence row records the boot id (`/proc/sys/kernel/random/boot_id`) it was written under, and a
/// row written under another boot counts as expired. Round retention, which is days and no safety matter, is
/// judged by the wall clock.
///
/// ## Fencing tokens and durability
///
/// Each key has one row that keeps the last token it issued; a release or an expiry clears the holder but
/// keeps the token, and a new term gets that token plus one. With the default ``Configuration/Synchronous/full``
/// a commit is on the disk before the operation returns, so tokens never go back, whichever process is killed
/// (`kill -9` included) and also across a power loss.
///
/// ## Changes across processes
///
/// ``changes(key:)`` is pushed, not polled. Next to the database lives a sidecar file, `PATH-notify`. A process
/// that commits a change others should see (a new term, a release, new metadata) writes one byte to it; each
/// store instance with subscribers watches it with inotify on a thread of its own (started at the first
/// subscription, stopped by ``close()``) and, when it fires, wakes its subscribers, which read the database
/// again. A handover between processes is thus seen within milliseconds. Expiries need no write: each
/// subscription also reads again when the term's remaining time runs out.
///
/// ## Table layout
///
/// Readable with `sqlite3 PATH` (times in `*_ns` columns are `CLOCK_BOOTTIME` nanoseconds, valid only under the
/// row's `boot_id`; `*_ms` columns are Unix milliseconds):
///
/// ```sql
/// CREATE TABLE baton_meta (       -- name 'schema_version' = '1'
///     name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
/// CREATE TABLE baton_leases (     -- one row per key ever acquired; never deleted
///     key        TEXT PRIMARY KEY NOT NULL,
///     token      INTEGER NOT NULL, -- the last fencing token issued for the key
///     holder     TEXT,             -- NULL once released; the term is live while
///     metadata   TEXT,             --   holder IS NOT NULL AND boot_id = <this boot> AND expires_ns > <now>
///     ttl_ns     INTEGER,
///     expires_ns INTEGER,
///     boot_id    TEXT,
///     updated_ms INTEGER NOT NULL);  -- wall clock of the last write, for operators
/// CREATE TABLE baton_rounds (
///     system TEXT NOT NULL, round TEXT NOT NULL,
///     winner TEXT, completed_by TEXT,
///     expires_ms INTEGER NOT NULL,   -- end of retention
///     PRIMARY KEY (system, round));
/// CREATE TABLE baton_presence (
///     group_name TEXT NOT NULL, member TEXT NOT NULL,
///     expires_ns INTEGER NOT NULL, boot_id TEXT NOT NULL,
///     PRIMARY KEY (group_name, member));
/// ```
///
/// For example, the live leaders: `SELECT key, holder, token, metadata FROM baton_leases WHERE holder IS NOT
/// NULL;` (some of them may have expired). Expired round and presence rows are deleted by writes now and then.
/// Names are compared byte for byte, as by the other external stores.
///
/// ## Errors and cancellation
///
/// Every argument is checked before any I/O (``BatonError/Code/invalidArgument``). A failing SQLite call is
/// ``BatonError/Code/storeUnavailable`` (or ``BatonError/Code/timeout`` when the database stayed locked),
/// with a message naming the file and the operation. Cancelling a task that waits for its turn in this store
/// instance throws `CancellationError` and does nothing; once its turn has come, the operation runs to its end
/// (a transaction is always committed or rolled back) and its answer is returned.
///
/// ## Lifecycle
///
/// Call ``close()`` when done: it ends the subscriptions, stops the watching thread and the SQLite thread, and
/// closes the file. Linux only (inotify, `CLOCK_BOOTTIME`, the boot id).
public final class SQLiteLeaseStore: LeaseStoreDriver {
    /// `sqlite`.
    public var storeName: String { "sqlite" }
    /// False for now: the store still opens its connections as it is made, so it answers before ``run()``.
    public var needsRun: Bool { false }

    /// Runs until cancelled or shut down gracefully, then closes the store.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    /// The database file, as given.
    public let path: String
    /// The configuration the store was opened with.
    public let configuration: Configuration

    private let sidecarPath: String
    private let bootID: String
    private let logger: Logger
    private let connection: SQLiteConnection
    /// The one thread this store runs SQLite calls on (its own, so that a call waiting for another
    /// connection's lock never holds up the threads of other stores or of NIO's shared pool).
    private let threadPool: NIOThreadPool
    /// Held by a turn of operations and by close(), so statements of two turns never interleave in a transaction.
    private let gate = AsyncFIFOLock()
    private let signals = ChangeSignals()
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var watcher: ChangeFileWatcher?
        var watchFailed = false
        /// `CLOCK_BOOTTIME` of the last sweep of expired rows by this instance.
        var lastSweep: Int64?
        /// Operations waiting for the next turn, by id (ids rise in arrival order).
        var pending: [UInt64: PendingOperation] = [:]
        var nextOperationID: UInt64 = 0
        /// Whether a task is running turns.
        var running = false

        mutating func takeOperationID() -> UInt64 {
            nextOperationID += 1
            return nextOperationID
        }
    }

    /// How often an instance deletes expired round and presence rows (during a claim or a heartbeat).
    private static let sweepInterval: Int64 = 60 * 1_000_000_000
    /// How often subscriptions read again when inotify cannot be used.
    private static let fallbackPollInterval: Duration = .seconds(1)
    /// The schema version this code writes and reads.
    private static let schemaVersion = 1

    /// Opens the database at `path`, creating the file and its tables if needed (both idempotent, so any
    /// number of processes may open the same file at once), and sets WAL mode, the busy timeout and the
    /// synchronous level.
    ///
    /// - Parameters:
    ///   - path: the database file; relative paths are relative to the current directory. The files
    ///     `PATH-wal`, `PATH-shm` (SQLite's) and `PATH-notify` (change signals) live next to it, so the
    ///     directory must be writable.
    ///   - configuration: timeouts and durability.
    ///   - logger: where the store reports what it cannot report through an operation's error.
    /// - Throws: ``BatonError`` `invalidArgument` for an empty path, `:memory:` or a `file:` URI (the store needs
    ///   a real file that processes share) or a configuration value out of range; `storeUnavailable` if the file
    ///   cannot be opened or set up, was written by a newer Baton, or the boot id cannot be read; `timeout` if
    ///   another connection held the file locked for longer than the busy timeout.
    public init(
        path: String,
        configuration: Configuration = .init(),
        logger: Logger = Logger(label: "baton.sqlite")
    ) async throws {
        try Self.validate(path: path)
        try configuration.validate()
        guard let bootID = HostClock.bootID() else {
            throw BatonError.storeUnavailable(
                "cannot open the SQLite store at \(path): cannot read the boot id from \(HostClock.bootIDPath)"
            )
        }
        var logger = logger
        logger[metadataKey: "baton.sqlite.path"] = "\(path)"
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(
                storage: .file(path: path),
                threadPool: threadPool,
                logger: logger,
                on: MultiThreadedEventLoopGroup.singleton.any()
            )
        } catch {
            try? await threadPool.shutdownGracefully()
            throw Self.storeError(error, path: path, operation: "open", busyTimeout: configuration.busyTimeout)
        }
        self.path = path
        self.configuration = configuration
        self.sidecarPath = path + "-notify"
        self.bootID = bootID
        self.logger = logger
        self.connection = connection
        self.threadPool = threadPool
        do {
            try await prepare()
        } catch {
            try? await close()
            throw error
        }
        logger.debug("baton: opened the SQLite store")
    }

    deinit {
        // A safety net for a store that was never closed: close the connection on its thread, then stop the
        // thread, both in the background (the connection and the thread pool insist on being closed).
        let (closed, watcher) = state.withLock { ($0.closed, $0.watcher) }
        guard !closed else { return }
        watcher?.shutdown()
        let threadPool = threadPool
        _ = connection.close()
        threadPool.submit { _ in threadPool.shutdownGracefully { _ in } }
    }

    // MARK: Leases

    /// Takes `key` for `holder` if it is free or expired (a new term, with the key's last token plus one), or
    /// renews it if `holder` holds it (same token, new ttl and metadata).
    ///
    /// One `BEGIN IMMEDIATE` transaction. A new term, a release or new metadata wakes the subscribers of
    /// ``changes(key:)`` in every process.
    /// - Returns: ``AcquireResult/acquired(_:)``, or ``AcquireResult/held(by:)`` with the leader and its time left.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance (nothing was done then).
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        let bootID = bootID
        let (result, changed) = try await transaction("acquire of \(key)") { db, now in
            let row = try await Self.leaseRow(db, key: key)
            let wall = HostClock.wallMilliseconds()
            if let row, row.isLive(bootID: bootID, now: now), let current = row.holder {
                if current != holder {
                    return (AcquireResult.held(by: row.info(now: now)), false)
                }
                try await db.execute(
                    """
                    UPDATE baton_leases SET metadata = ?, ttl_ns = ?, expires_ns = ?, updated_ms = ?
                    WHERE key = ?
                    """,
                    [
                        .optionalText(metadata), .int64(ttl.batonNanoseconds), .int64(now + ttl.batonNanoseconds),
                        .int64(wall), .text(key),
                    ]
                )
                let lease = Lease(key: key, holder: holder, token: row.token, ttl: ttl, metadata: metadata)
                return (.acquired(lease), row.metadata != metadata)
            }
            let token = (row?.token ?? 0) + 1
            try await db.execute(
                """
                INSERT INTO baton_leases (key, token, holder, metadata, ttl_ns, expires_ns, boot_id, updated_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET token = excluded.token, holder = excluded.holder,
                    metadata = excluded.metadata, ttl_ns = excluded.ttl_ns, expires_ns = excluded.expires_ns,
                    boot_id = excluded.boot_id, updated_ms = excluded.updated_ms
                """,
                [
                    .text(key), .int64(token), .text(holder), .optionalText(metadata), .int64(ttl.batonNanoseconds),
                    .int64(now + ttl.batonNanoseconds), .text(bootID), .int64(wall),
                ]
            )
            return (.acquired(Lease(key: key, holder: holder, token: token, ttl: ttl, metadata: metadata)), true)
        }
        if changed { publishChange(of: key) }
        return result
    }

    /// Extends the term of `lease` to `ttl` from now and publishes `lease.metadata`, if the key is still in
    /// that term (same holder and token, not expired).
    ///
    /// One `BEGIN IMMEDIATE` transaction. New metadata wakes the subscribers of ``changes(key:)``.
    /// - Returns: the lease with the new ttl (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `invalidArgument`, `storeUnavailable`, `timeout`;
    ///   `CancellationError` if cancelled while waiting for its turn in this instance.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        let bootID = bootID
        let changed = try await transaction("renew of \(lease.key)") { db, now in
            guard let row = try await Self.leaseRow(db, key: lease.key), row.isLive(bootID: bootID, now: now),
                row.holder == lease.holder, row.token == lease.token
            else {
                throw BatonError.lost(key: lease.key)
            }
            try await db.execute(
                "UPDATE baton_leases SET metadata = ?, ttl_ns = ?, expires_ns = ?, updated_ms = ? WHERE key = ?",
                [
                    .optionalText(lease.metadata), .int64(ttl.batonNanoseconds), .int64(now + ttl.batonNanoseconds),
                    .int64(HostClock.wallMilliseconds()), .text(lease.key),
                ]
            )
            return row.metadata != lease.metadata
        }
        if changed { publishChange(of: lease.key) }
        var renewed = lease
        renewed.ttl = ttl
        return renewed
    }

    /// Ends the term of `lease` at once if the key is still in that term (same holder and token); a no-op
    /// otherwise. The key keeps its last token, so the next term gets a larger one.
    ///
    /// One `UPDATE` statement. A release wakes the subscribers of ``changes(key:)`` in every process.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func release(_ lease: Lease) async throws {
        let released = try await transaction("release of \(lease.key)") { db, _ in
            let rows = try await db.rows(
                """
                UPDATE baton_leases
                SET holder = NULL, metadata = NULL, ttl_ns = NULL, expires_ns = NULL, boot_id = NULL, updated_ms = ?
                WHERE key = ? AND holder = ? AND token = ?
                RETURNING token
                """,
                [.int64(HostClock.wallMilliseconds()), .text(lease.key), .text(lease.holder), .int64(lease.token)]
            )
            return !rows.isEmpty
        }
        if released { publishChange(of: lease.key) }
    }

    /// The leader of `key` with its time left, or nil if the key is free or its term expired.
    ///
    /// One `SELECT`; the time left is measured after the read, so it is never overstated.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func current(key: String) async throws -> LeaderInfo? {
        let bootID = bootID
        return try await withSession("read of \(key)") { db in
            let row = try await Self.leaseRow(db, key: key)
            let now = HostClock.bootNanoseconds()
            guard let row, row.isLive(bootID: bootID, now: now) else { return nil }
            return row.info(now: now)
        }
    }

    /// The leader of `key` now and after every change, pushed from any process sharing the file (see
    /// "Changes across processes" above), with expiries seen by a timer at the term's remaining time.
    ///
    /// The first subscription of this instance starts its watching thread. The sequence ends with the error of
    /// a failed read, or with ``BatonError/Code/storeUnavailable`` once the store is closed; it ends when the
    /// consuming task is cancelled.
    /// - Throws: ``BatonError`` `invalidArgument` at once for a malformed key.
    public func changes(key: String) throws -> LeaderChanges {
        let subscription = signals.subscribe(key)
        let pushed = startWatching()
        let pollInterval = configuration.changesPollInterval ?? (pushed ? nil : Self.fallbackPollInterval)
        return LeaderChangeFeed.make(clock: .continuous, pollInterval: pollInterval, signals: subscription) {
            [self] in
            try await current(key: key)
        }
    }

    // MARK: Rounds

    /// Claims a round for `candidate` under ``RoundRules/claim(_:candidate:)``: the first claim wins, the winner
    /// claiming again wins again. A new record is kept for `retention` (by the wall clock).
    ///
    /// One `BEGIN IMMEDIATE` transaction, which now and then also deletes expired round and presence rows.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func claim(
        system: String,
        round: String,
        candidate: String,
        retention: Duration
    ) async throws -> ClaimResult {
        return try await transaction("claim of \(system)/\(round)") { [self] db, now in
            let wall = HostClock.wallMilliseconds()
            let existing = try await Self.roundRow(db, system: system, round: round, wall: wall)
            let (result, record) = RoundRules.claim(existing?.record, candidate: candidate)
            if record != existing?.record {
                try await Self.writeRound(
                    db, system: system, round: round, record: record,
                    expires: wall + retention.batonMilliseconds
                )
            }
            try await sweepIfDue(db, now: now, wall: wall)
            return result
        }
    }

    /// The winner of a round, or nil if it was not claimed or its record expired.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func winner(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.winner
    }

    /// Records a completion under ``RoundRules/complete(_:by:system:round:)``. A record created by the completion
    /// is kept for `retention`; an existing record keeps its expiry.
    ///
    /// One `BEGIN IMMEDIATE` transaction.
    /// - Throws: ``BatonError`` `notWinner`, `alreadyCompleted`, `invalidArgument`, `storeUnavailable`, `timeout`;
    ///   `CancellationError` if cancelled while waiting for its turn in this instance.
    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await transaction("completion of \(system)/\(round)") { db, _ in
            let wall = HostClock.wallMilliseconds()
            let stored = try await Self.roundRow(db, system: system, round: round, wall: wall)
            let record = try RoundRules.complete(stored?.record, by: completer, system: system, round: round).get()
            if record != stored?.record {
                try await Self.writeRound(
                    db, system: system, round: round, record: record,
                    expires: stored?.expires ?? wall + retention.batonMilliseconds
                )
            }
        }
    }

    /// The identity whose completion of the round is recorded, or nil.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func completion(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.completedBy
    }

    // MARK: Presence

    /// Marks `member` of `group` alive for `ttl` from now (by the host's boot clock).
    ///
    /// One `BEGIN IMMEDIATE` transaction, which now and then also deletes expired round and presence rows.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        let bootID = bootID
        try await transaction("heartbeat of \(group)/\(member)") { [self] db, now in
            try await db.execute(
                """
                INSERT INTO baton_presence (group_name, member, expires_ns, boot_id) VALUES (?, ?, ?, ?)
                ON CONFLICT (group_name, member) DO UPDATE
                SET expires_ns = excluded.expires_ns, boot_id = excluded.boot_id
                """,
                [.text(group), .text(member), .int64(now + ttl.batonNanoseconds), .text(bootID)]
            )
            try await sweepIfDue(db, now: now, wall: HostClock.wallMilliseconds())
        }
    }

    /// Removes `member` from `group` at once. One `DELETE` statement.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func leave(group: String, member: String) async throws {
        try await transaction("leave of \(group)/\(member)") { db, _ in
            try await db.execute(
                "DELETE FROM baton_presence WHERE group_name = ? AND member = ?",
                [.text(group), .text(member)]
            )
        }
    }

    /// The members of `group` whose last heartbeat has not expired (and was made in this boot), sorted.
    ///
    /// One `SELECT`; expiry is judged after the read.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`; `CancellationError` if cancelled
    ///   while waiting for its turn in this instance.
    public func members(group: String) async throws -> [String] {
        let bootID = bootID
        return try await withSession("members of \(group)") { db in
            let rows = try await db.rows(
                "SELECT member, expires_ns, boot_id FROM baton_presence WHERE group_name = ?",
                [.text(group)]
            )
            let now = HostClock.bootNanoseconds()
            return rows.compactMap { row -> String? in
                guard row.column("boot_id")?.string == bootID,
                    let expires = row.column("expires_ns")?.integer, Int64(expires) > now
                else { return nil }
                return row.column("member")?.string
            }
            .sorted()
        }
    }

    // MARK: Lifecycle

    /// Closes the store: ends every ``changes(key:)`` sequence (with ``BatonError/Code/storeUnavailable``),
    /// stops the watching thread, lets an operation already running finish, makes every later call fail with
    /// ``BatonError/Code/storeUnavailable``, and closes the file. Calling it again does nothing. Leases held
    /// through this store are not released; they expire.
    ///
    /// Runs to its end even if the calling task is cancelled.
    /// - Throws: ``BatonError`` `storeUnavailable` if SQLite fails to close the file.
    public func close() async throws {
        let (first, watcher) = state.withLock { state in
            defer {
                state.closed = true
                state.watcher = nil
            }
            return (!state.closed, state.watcher)
        }
        guard first else { return }
        // Subscriptions read once more, find the store closed, and end with that error.
        signals.notifyAll()
        signals.finishAll()
        try await Task { [self] in
            await watcher?.shutdown()
            try await gate.lock()
            defer { gate.unlock() }
            do {
                try await connection.close()
            } catch {
                try? await threadPool.shutdownGracefully()
                throw storeError(error, operation: "close")
            }
            try await threadPool.shutdownGracefully()
        }.value
    }

    // MARK: Sessions and transactions

    /// Statements on the store's connection, for one operation that holds the instance's turn.
    struct Session: Sendable {
        let connection: SQLiteConnection

        func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
            try await connection.query(sql, binds)
        }

        func execute(_ sql: String, _ binds: [SQLiteData] = []) async throws {
            _ = try await rows(sql, binds)
        }
    }

    /// Runs `body` (statements outside any transaction: reads) when this instance's turn comes, mapping its errors
    /// to ``BatonError``.
    ///
    /// Waiting for the turn can be cancelled (nothing is done then). Once the turn has come, `body` runs to its
    /// end, whatever happens to the caller, because a cancelled SQLite call would be skipped and could leave a
    /// transaction open, holding the file's write lock. See ``transaction(_:_:)`` for how turns are shared.
    func withSession<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (Session) async throws -> T
    ) async throws -> T {
        try await enqueue(operation, isWrite: false) { db, _ in try await body(db) }
    }

    /// Runs `body` as one write: atomic on the file, and committed (on the disk, with
    /// ``Configuration/Synchronous/full``) before this returns. `now` is the host's boot clock read after the
    /// file's write lock was taken.
    ///
    /// Operations are run in turns: those that arrive while a turn runs wait for the next, which takes them all
    /// (up to ``maxTurnSize``, oldest first). It runs their writes in one `BEGIN IMMEDIATE … COMMIT`
    /// transaction, each inside a savepoint of its own, answers them once committed, and then runs the reads. A
    /// write that throws is rolled back to its savepoint and leaves the others alone; a transaction that cannot
    /// begin or commit fails all its writes (none of them was done). One commit, and so one sync of the disk,
    /// serves every write of the turn, and one turn of the connection every read: with thousands of leases in one
    /// process, neither the disk's sync rate nor a queue of single reads ahead of the writes bounds the renews.
    ///
    /// Waiting for the turn can be cancelled (nothing is done then); once the turn has started, the write runs
    /// to its end.
    func transaction<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (Session, _ now: Int64) async throws -> T
    ) async throws -> T {
        try await enqueue(operation, isWrite: true, body)
    }

    /// Queues `body` for the next turn and returns its answer.
    private func enqueue<T: Sendable>(
        _ operation: String,
        isWrite: Bool,
        _ body: @escaping @Sendable (Session, _ now: Int64) async throws -> T
    ) async throws -> T {
        let id = state.withLock { $0.takeOperationID() }
        let value = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
                let outcome = state.withLock { state -> Queued in
                    if Task.isCancelled { return .cancelled }
                    state.pending[id] = PendingOperation(
                        operation: operation,
                        isWrite: isWrite,
                        body: { db, now in try await body(db, now) },
                        continuation: continuation
                    )
                    if state.running { return .queued }
                    state.running = true
                    return .startTurns
                }
                switch outcome {
                case .queued: break
                case .cancelled: continuation.resume(throwing: CancellationError())
                // Unstructured on purpose: the turns must run whatever happens to the task that queued the first
                // operation. It ends when nothing is left to run; close() waits for the turn it is running.
                case .startTurns: Task { await self.runTurns() }
                }
            }
        } onCancel: {
            state.withLock { $0.pending.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
        // `body` returned a T: the value is the one it returned.
        return value as! T
    }

    /// How many operations wait for their turn now.
    var queuedOperations: Int { state.withLock { $0.pending.count } }

    /// What became of an operation handed to ``enqueue(_:isWrite:_:)``.
    private enum Queued {
        case queued, startTurns, cancelled
    }

    /// An operation waiting for its turn.
    private struct PendingOperation: Sendable {
        var operation: String
        var isWrite: Bool
        var body: @Sendable (Session, _ now: Int64) async throws -> any Sendable
        var continuation: CheckedContinuation<any Sendable, any Error>
    }

    /// The most operations in one turn, so that one transaction does not hold the file's write lock (which other
    /// processes wait for) for long.
    private static let maxTurnSize = 1000

    /// Runs turns of waiting operations, oldest first, until none is left.
    private func runTurns() async {
        while true {
            let turn = state.withLock { state -> [PendingOperation] in
                let ids = state.pending.keys.sorted().prefix(Self.maxTurnSize)
                if ids.isEmpty { state.running = false }
                return ids.compactMap { state.pending.removeValue(forKey: $0) }
            }
            if turn.isEmpty { return }
            do {
                try await gate.lock()
            } catch {
                for operation in turn { operation.continuation.resume(throwing: error) }
                continue
            }
            defer { gate.unlock() }
            if state.withLock({ $0.closed }) {
                for operation in turn {
                    operation.continuation.resume(
                        throwing: BatonError.storeUnavailable(
                            "\(operation.operation) failed: the SQLite store at \(path) is closed"
                        )
                    )
                }
                continue
            }
            let writes = turn.filter(\.isWrite)
            if !writes.isEmpty {
                for (write, answer) in zip(writes, await commit(writes)) { write.continuation.resume(with: answer) }
            }
            let db = Session(connection: connection)
            for read in turn where !read.isWrite {
                do {
                    read.continuation.resume(returning: try await read.body(db, HostClock.bootNanoseconds()))
                } catch {
                    read.continuation.resume(throwing: storeError(error, operation: read.operation))
                }
            }
        }
    }

    /// Runs `writes` in one transaction and returns each one's answer, in order.
    private func commit(_ writes: [PendingOperation]) async -> [Result<any Sendable, any Error>] {
        let db = Session(connection: connection)
        do {
            try await db.execute("BEGIN IMMEDIATE")
        } catch {
            return writes.map { .failure(storeError(error, operation: $0.operation)) }
        }
        var answers: [Result<any Sendable, any Error>] = []
        answers.reserveCapacity(writes.count)
        do {
            for write in writes {
                try await db.execute("SAVEPOINT baton_write")
                do {
                    let value = try await write.body(db, HostClock.bootNanoseconds())
                    try await db.execute("RELEASE baton_write")
                    answers.append(.success(value))
                } catch {
                    try await db.execute("ROLLBACK TO baton_write")
                    try await db.execute("RELEASE baton_write")
                    answers.append(.failure(storeError(error, operation: write.operation)))
                }
            }
            try await db.execute("COMMIT")
            return answers
        } catch {
            // A savepoint or the commit failed: nothing of the transaction is kept.
            do {
                try await db.execute("ROLLBACK")
            } catch let rollbackError {
                logger.warning(
                    "baton: rollback failed",
                    metadata: ["operation": "\(writes[0].operation)", "error": "\(rollbackError)"]
                )
            }
            return writes.map { .failure(storeError(error, operation: $0.operation)) }
        }
    }

    /// Sets the connection up and creates the tables if needed.
    private func prepare() async throws {
        let busyMilliseconds = configuration.busyTimeout.batonMilliseconds
        let synchronous = configuration.synchronous.pragmaValue
        let journalMode = try await withSession("setup") { db in
            // Replaces SQLiteNIO's busy handler, which retries forever, with SQLite's sleeping one and a limit.
            try await db.execute("PRAGMA busy_timeout = \(busyMilliseconds)")
            let mode = try await db.rows("PRAGMA journal_mode = WAL").first?.column("journal_mode")?.string
            try await db.execute("PRAGMA synchronous = \(synchronous)")
            return mode
        }
        if journalMode?.lowercased() != "wal" {
            logger.warning(
                "baton: SQLite refused WAL mode; readers will wait for writers",
                metadata: ["journal_mode": "\(journalMode ?? "unknown")"]
            )
        }
        let version = try await transaction("setup") { db, _ in
            for statement in Self.schema { try await db.execute(statement) }
            try await db.execute(
                "INSERT OR IGNORE INTO baton_meta (name, value) VALUES ('schema_version', ?)",
                [.text(String(Self.schemaVersion))]
            )
            return try await db.rows("SELECT value FROM baton_meta WHERE name = 'schema_version'")
                .first?.column("value")?.integer
        }
        guard let version, version <= Self.schemaVersion else {
            throw BatonError.storeUnavailable(
                "the SQLite store at \(path) has schema version \(version.map(String.init) ?? "unknown"); "
                    + "this Baton knows version \(Self.schemaVersion) (was the file written by a newer Baton?)"
            )
        }
        if let code = ChangeFile.create(sidecarPath) {
            throw BatonError.storeUnavailable(
                "cannot create the change file \(sidecarPath) of the SQLite store at \(path): "
                    + ChangeFile.describe(code)
            )
        }
    }

    /// The tables, created idempotently (the layout is in the documentation of ``SQLiteLeaseStore``).
    private static let schema = [
        """
        CREATE TABLE IF NOT EXISTS baton_meta (
            name  TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS baton_leases (
            key        TEXT PRIMARY KEY NOT NULL,
            token      INTEGER NOT NULL,
            holder     TEXT,
            metadata   TEXT,
            ttl_ns     INTEGER,
            expires_ns INTEGER,
            boot_id    TEXT,
            updated_ms INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS baton_rounds (
            system       TEXT NOT NULL,
            round        TEXT NOT NULL,
            winner       TEXT,
            completed_by TEXT,
            expires_ms   INTEGER NOT NULL,
            PRIMARY KEY (system, round)
        )
        """,
        "CREATE INDEX IF NOT EXISTS baton_rounds_by_expiry ON baton_rounds (expires_ms)",
        """
        CREATE TABLE IF NOT EXISTS baton_presence (
            group_name TEXT NOT NULL,
            member     TEXT NOT NULL,
            expires_ns INTEGER NOT NULL,
            boot_id    TEXT NOT NULL,
            PRIMARY KEY (group_name, member)
        )
        """,
    ]

    // MARK: Rows

    /// A row of `baton_leases`.
    private struct LeaseRow: Sendable {
        var token: Int64
        var holder: String?
        var metadata: String?
        var ttl: Int64?
        var expires: Int64?
        var bootID: String?

        func isLive(bootID currentBoot: String, now: Int64) -> Bool {
            holder != nil && bootID == currentBoot && (expires ?? .min) > now
        }

        func info(now: Int64) -> LeaderInfo {
            LeaderInfo(
                holder: holder ?? "",
                token: token,
                metadata: metadata,
                ttl: ttl.map { .nanoseconds($0) },
                remaining: .nanoseconds((expires ?? now) - now)
            )
        }
    }

    private static func leaseRow(_ db: Session, key: String) async throws -> LeaseRow? {
        let rows = try await db.rows(
            "SELECT token, holder, metadata, ttl_ns, expires_ns, boot_id FROM baton_leases WHERE key = ?",
            [.text(key)]
        )
        guard let row = rows.first, let token = row.column("token")?.integer else { return nil }
        return LeaseRow(
            token: Int64(token),
            holder: row.column("holder")?.string,
            metadata: row.column("metadata")?.string,
            ttl: row.column("ttl_ns")?.integer.map(Int64.init),
            expires: row.column("expires_ns")?.integer.map(Int64.init),
            bootID: row.column("boot_id")?.string
        )
    }

    /// The live record of a round and its expiry (Unix milliseconds), or nil.
    private static func roundRow(
        _ db: Session,
        system: String,
        round: String,
        wall: Int64
    ) async throws -> (record: RoundRecord, expires: Int64)? {
        let rows = try await db.rows(
            """
            SELECT winner, completed_by, expires_ms FROM baton_rounds
            WHERE system = ? AND round = ? AND expires_ms > ?
            """,
            [.text(system), .text(round), .int64(wall)]
        )
        guard let row = rows.first, let expires = row.column("expires_ms")?.integer else { return nil }
        let record = RoundRecord(winner: row.column("winner")?.string, completedBy: row.column("completed_by")?.string)
        return (record, Int64(expires))
    }

    private static func writeRound(
        _ db: Session,
        system: String,
        round: String,
        record: RoundRecord,
        expires: Int64
    ) async throws {
        try await db.execute(
            """
            INSERT INTO baton_rounds (system, round, winner, completed_by, expires_ms) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (system, round) DO UPDATE SET winner = excluded.winner,
                completed_by = excluded.completed_by, expires_ms = excluded.expires_ms
            """,
            [
                .text(system), .text(round), .optionalText(record.winner), .optionalText(record.completedBy),
                .int64(expires),
            ]
        )
    }

    private func roundRecord(system: String, round: String) async throws -> RoundRecord? {
        return try await withSession("read of round \(system)/\(round)") { db in
            try await Self.roundRow(db, system: system, round: round, wall: HostClock.wallMilliseconds())?.record
        }
    }

    /// Deletes expired round and presence rows, at most once per ``sweepInterval`` per instance.
    private func sweepIfDue(_ db: Session, now: Int64, wall: Int64) async throws {
        let due = state.withLock { state -> Bool in
            if let last = state.lastSweep, now - last < Self.sweepInterval { return false }
            state.lastSweep = now
            return true
        }
        guard due else { return }
        try await db.execute("DELETE FROM baton_rounds WHERE expires_ms <= ?", [.int64(wall)])
        try await db.execute(
            "DELETE FROM baton_presence WHERE boot_id <> ? OR expires_ns <= ?",
            [.text(bootID), .int64(now)]
        )
    }

    // MARK: Change signals

    /// Wakes this instance's subscribers of `key` and, through the change file, every other process's.
    private func publishChange(of key: String) {
        signals.notify(key)
        if let code = ChangeFile.touch(sidecarPath) {
            logger.warning(
                "baton: cannot write the change file; other processes see this change only at expiry or by polling",
                metadata: ["file": "\(sidecarPath)", "error": "\(ChangeFile.describe(code))"]
            )
        }
    }

    /// Starts the inotify watcher of this instance if it is not running yet.
    /// - Returns: whether changes are pushed (false if inotify could not be set up).
    private func startWatching() -> Bool {
        let (running, failed) = state.withLock { ($0.watcher != nil || $0.closed, $0.watchFailed) }
        if running { return true }
        if failed { return false }
        let watcher: ChangeFileWatcher
        do {
            watcher = try ChangeFileWatcher(path: sidecarPath, signals: signals, logger: logger)
        } catch {
            logger.warning(
                "baton: cannot watch the change file; changes from other processes are seen by polling",
                metadata: ["file": "\(sidecarPath)", "error": "\(error.message)"]
            )
            state.withLock { $0.watchFailed = true }
            return false
        }
        let installed = state.withLock { state -> Bool in
            guard state.watcher == nil, !state.closed else { return false }
            state.watcher = watcher
            return true
        }
        // Another subscription started one first (or the store was closed meanwhile): stop this one.
        if !installed { watcher.shutdown() }
        return true
    }

    // MARK: Errors

    private static func validate(path: String) throws(BatonError) {
        if path.isEmpty {
            throw .invalidArgument("the SQLite path is empty")
        }
        if path.utf8.contains(0) {
            throw .invalidArgument("the SQLite path contains a NUL byte")
        }
        if path == ":memory:" || path.hasPrefix("file:") {
            throw .invalidArgument(
                "the SQLite path must name a file that processes share, not \(path.hasPrefix("file:") ? "a URI" : path)"
            )
        }
    }

    private func storeError(_ error: any Error, operation: String) -> any Error {
        Self.storeError(error, path: path, operation: operation, busyTimeout: configuration.busyTimeout)
    }

    /// `error` as a ``BatonError`` naming the file and the operation (``BatonError`` and `CancellationError`
    /// pass through).
    private static func storeError(
        _ error: any Error,
        path: String,
        operation: String,
        busyTimeout: Duration
    ) -> any Error {
        switch error {
        case is BatonError, is CancellationError:
            return error
        case let error as SQLiteError:
            switch error.reason {
            case .busy, .busyTimeout, .busyInRecovery, .busyInSnapshot, .locked:
                return BatonError(
                    code: .timeout,
                    message: "\(operation) on the SQLite store at \(path) failed: the database stayed locked "
                        + "by another connection for longer than the busy timeout of \(busyTimeout)",
                    underlying: error
                )
            default:
                return BatonError.storeUnavailable(
                    "\(operation) on the SQLite store at \(path) failed: \(error)",
                    underlying: error
                )
            }
        default:
            return BatonError.storeUnavailable(
                "\(operation) on the SQLite store at \(path) failed: \(error)",
                underlying: error
            )
        }
    }
}

extension SQLiteData {
    fileprivate static func int64(_ value: Int64) -> SQLiteData { .integer(SQLiteInt64(value)) }

    fileprivate static func optionalText(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
}
