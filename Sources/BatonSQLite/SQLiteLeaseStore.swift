@_spi(BatonStoreKit) import Baton
import Logging
import NIOCore
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// A ``LeaseStore`` in one SQLite file that any number of processes of one host share: the zero-setup store.
///
/// ```swift
/// let store = LeaseStore(try SQLiteLeaseStore(path: "baton.db"))
/// ```
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
/// next turn, which runs their writes in one transaction, each atomic and rolled back alone if it fails (a write
/// of one statement by itself, any other in a savepoint of its own), and then their reads. The turns run on the
/// store's SQLite thread, where their statements run, so a turn of many statements wakes no other thread. One commit, and so one sync of the disk,
/// serves every write of a turn: a process holding thousands of leases is bounded by SQLite's statements, not by
/// the disk's sync rate.
///
/// ## Whose clock decides expiry
///
/// By default the host's `CLOCK_BOOTTIME` (``HostClock``), read after the write lock is taken, so that a term
/// granted by a request sent at `t0` never ends before `t0 + ttl`. All processes of the host share that clock.
/// It restarts at boot, so each lease and presence row records the boot id (`/proc/sys/kernel/random/boot_id`)
/// it was written under, and a row written under another boot counts as expired. Another
/// ``SQLiteExpiryClock`` can be given (a manual one in tests); every instance on the file must then read the
/// same one. Round retention, which is days and no safety matter, is judged by the wall clock.
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
/// running store instance watches it with inotify on a thread of its own and, when it fires, wakes its
/// subscribers, which read the database again. A handover between processes is thus seen within milliseconds.
/// Expiries need no write: each subscription also reads again when the term's remaining time runs out.
///
/// ## Table layout
///
/// Readable with `sqlite3 PATH` (times in `*_ns` columns are nanoseconds of the expiry clock, `CLOCK_BOOTTIME`
/// by default, valid only under the row's `boot_id`; `*_ms` columns are Unix milliseconds):
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
/// CREATE TABLE baton_waiters (    -- the queue of candidates waiting for a key
///     key TEXT NOT NULL, holder TEXT NOT NULL,
///     arrival INTEGER NOT NULL,     -- the queue's order: the first asked has the lowest
///     metadata TEXT, ttl_ns INTEGER NOT NULL, -- what its term will be
///     expires_ns INTEGER NOT NULL, boot_id TEXT NOT NULL, -- it leaves the queue then unless it asks again
///     PRIMARY KEY (key, holder));
/// ```
///
/// For example, the live leaders: `SELECT key, holder, token, metadata FROM baton_leases WHERE holder IS NOT
/// NULL;` (some of them may have expired). Expired round and presence rows are deleted by writes now and then.
///
/// ## The queue
///
/// A waiting acquire (an elector's, a long poll's) that is refused puts its holder in `baton_waiters`, or keeps
/// its place there for one and a half ttl; electors and long polls ask again once per ttl while they wait. A free
/// key goes to the first live candidate in line: a release starts that candidate's term in the same transaction
/// (with the ttl and metadata of its last waiting acquire; its own next acquire renews it, same token), and so
/// does whoever finds the key expired while candidates wait (an acquire, which is then answered with that
/// candidate as the leader, or a change feed's read). A release wakes only the next one, in this process and in
/// every other. `baton_waiters` is an addition to schema version 1: a file keeps working with an earlier Baton,
/// whose candidates never queue and take a key only when they find it free, which with candidates queued happens
/// once the queue is empty.
/// Names are compared byte for byte, as by the other external stores.
///
/// ## Errors and cancellation
///
/// A failing SQLite call is ``BatonError/Code/storeUnavailable`` (or ``BatonError/Code/timeout`` when the
/// database stayed locked), with a message naming the file and the operation. Cancelling a task that waits for
/// its turn in this store instance throws `CancellationError` and does nothing; once its turn has come, the
/// operation runs to its end (a transaction is always committed or rolled back) and its answer is returned.
///
/// ## Lifecycle
///
/// Making the store opens nothing. ``run()`` opens the file, sets it up (WAL mode, busy timeout, tables), starts
/// the thread that watches the change file and runs the operations' turns; operations called before it is
/// ready wait for it. When `run()` is cancelled or shut down gracefully, it lets the turn under way finish,
/// fails the waiting and later operations with ``BatonError/Code/storeUnavailable``, ends every
/// ``changes(key:)`` sequence, stops the watching thread and the SQLite thread, and closes the file. Leases
/// held through the store are not released; they expire. Linux only (inotify, `CLOCK_BOOTTIME`, the boot id).
public final class SQLiteLeaseStore: LeaseStoreDriver {
    /// `sqlite`.
    public var storeName: String { "sqlite" }

    /// True: a request waits only for its turn (see ``GroupCommit``), and that wait ends at the request's deadline,
    /// so the front runs requests in the caller's task rather than in a task of their own.
    public var honoursRequestAbort: Bool { true }

    /// The database file, as given.
    public let path: String
    /// The configuration the store was made with.
    public let configuration: Configuration

    let sidecarPath: String
    let logger: Logger
    /// The expiry clock's current reading, in nanoseconds since its epoch's origin.
    let now: @Sendable () -> Int64
    /// The expiry clock's epoch (the boot id), nil if unknown.
    private let epoch: @Sendable () -> String?
    /// The expiry clock, for the timers of ``changes(key:)``.
    let timer: BatonClock
    /// This instance's waiting candidates, to take a term handed to one from its change feed's read.
    let handedTerms: HandedTerms
    /// Runs the operations in turns on the connection, while ``run()`` runs.
    let commits: GroupCommit<SQLiteSession>
    let signals = ChangeSignals()
    /// One change feed per key for this instance's observers.
    let observations = SharedLeaderObservations()
    let state = Mutex(State())

    struct State {
        /// Whether ``run()`` was called.
        var started = false
        /// Whether changes from other processes are pushed (nil until ``run()`` has tried to watch for them).
        var pushed: Bool?
        /// Expiry-clock time of the last sweep of expired rows by this instance.
        var lastSweep: Int64?
    }

    /// Makes the store for the database at `path`; ``run()`` opens it.
    ///
    /// - Parameters:
    ///   - path: the database file; relative paths are relative to the current directory. The files
    ///     `PATH-wal`, `PATH-shm` (SQLite's) and `PATH-notify` (change signals) live next to it, so the
    ///     directory must be writable.
    ///   - configuration: the busy timeout, change polling and durability.
    ///   - clock: judges the expiry of leases and presence; ``HostClock`` (the default) is read alike by every
    ///     process of the host. Every store instance on one file must use the same clock.
    ///   - logger: where the store reports what it cannot report through an operation's error.
    /// - Throws: ``BatonError`` `invalidArgument` for an empty path, `:memory:` or a `file:` URI (the store needs
    ///   a real file that processes share) or a configuration value out of range.
    public init<C: SQLiteExpiryClock>(
        path: String,
        configuration: Configuration = .init(),
        clock: C = HostClock(),
        logger: Logger = Logger(label: "baton.sqlite")
    ) throws {
        try Self.validate(path: path)
        try configuration.validate()
        var logger = logger
        logger[metadataKey: "baton.sqlite.path"] = "\(path)"
        self.path = path
        self.configuration = configuration
        self.sidecarPath = path + "-notify"
        self.logger = logger
        self.now = { clock.nanoseconds(at: clock.now) }
        self.epoch = { clock.epoch() }
        self.timer = BatonClock(clock)
        self.handedTerms = HandedTerms(clock: self.timer)
        self.commits = GroupCommit(logger: logger)
    }

    // MARK: Lifecycle

    /// Opens the file, sets it up, watches the change file and runs the operations, until the task is cancelled
    /// or a graceful shutdown begins; then closes everything (see "Lifecycle" above). A store runs once.
    /// - Throws: ``BatonError`` `storeUnavailable` if the file cannot be opened or set up, was written by a
    ///   newer Baton, or the clock's epoch (the boot id) cannot be read; `timeout` if another connection held
    ///   the file locked for longer than the busy timeout during the setup; `invalidArgument` if called twice.
    public func run() async throws {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        guard first else {
            throw BatonError.invalidArgument("the SQLite store at \(path) was run twice; a store runs once")
        }
        let opened: Opened
        do {
            opened = try await open()
        } catch {
            let reason = (error as? BatonError)?.message ?? "\(error)"
            commits.finish { [path] operation in
                BatonError.storeUnavailable(
                    "\(operation) failed: the SQLite store at \(path) could not be opened: \(reason)")
            }
            signals.finishAll()
            if error is CancellationError { return }
            throw error
        }
        logger.debug("baton: opened the SQLite store")
        let finish: @Sendable () -> Void = { [commits, path] in
            commits.finish { operation in
                BatonError.storeUnavailable("\(operation) failed: the SQLite store at \(path) is closed")
            }
        }
        // The turns run in a task that `run()` awaits to its end, not in this task: a cancelled task would have
        // SQLiteNIO skip the statements of the turn running then (leaving its transaction open and the file's
        // write lock taken). Cancelling `run()` finishes the turns instead, after the one running now.
        // It runs on the SQLite thread, where its statements run (see ``ThreadPoolExecutor``).
        let turns = Task(executorPreference: ThreadPoolExecutor(opened.threadPool)) { [commits] in
            await commits.run(on: opened.session)
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await turns.value
            } onCancel: {
                finish()
            }
        } onGracefulShutdown: {
            finish()
        }
        // Subscriptions read once more, find the store closed, and end with that error.
        signals.notifyAll()
        signals.finishAll()
        try await opened.close()
        logger.debug("baton: closed the SQLite store")
    }

    /// What ``run()`` opened.
    private struct Opened: Sendable {
        let session: SQLiteSession
        let threadPool: NIOThreadPool
        let watcher: ChangeFileWatcher?
        let path: String

        /// Stops the watcher, closes the connection and stops its thread.
        func close() async throws {
            await watcher?.shutdown()
            do {
                // The future's close, which runs even though the task is cancelled (as it is when run() ends).
                let closing: EventLoopFuture<Void> = session.connection.close()
                try await closing.get()
            } catch {
                try? await threadPool.shutdownGracefully()
                throw SQLiteLeaseStore.storeError(error, path: path, operation: "close", busyTimeout: nil)
            }
            try await threadPool.shutdownGracefully()
        }
    }

    /// Opens the connection, sets the file up, and starts watching the change file.
    private func open() async throws -> Opened {
        guard let epoch = epoch() else {
            throw BatonError.storeUnavailable(
                "cannot open the SQLite store at \(path): its expiry clock has no epoch (the host clock's is the "
                    + "boot id, read from \(HostClock.bootIDPath))"
            )
        }
        // The one thread this store runs SQLite calls on (its own, so that a call waiting for another
        // connection's lock never holds up the threads of other stores or of NIO's shared pool).
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let session: SQLiteSession
        do {
            let connection = try await SQLiteConnection.open(
                storage: .file(path: path),
                threadPool: threadPool,
                logger: logger,
                on: MultiThreadedEventLoopGroup.singleton.any()
            )
            session = SQLiteSession(connection: connection, epoch: epoch)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw storeError(error, operation: "open")
        }
        do {
            try await SQLiteSchema.prepare(session, configuration: configuration, path: path, logger: logger)
            if let code = ChangeFile.create(sidecarPath) {
                throw BatonError.storeUnavailable(
                    "cannot create the change file \(sidecarPath) of the SQLite store at \(path): "
                        + ChangeFile.describe(code)
                )
            }
        } catch {
            try? await Opened(session: session, threadPool: threadPool, watcher: nil, path: path).close()
            throw storeError(error, operation: "setup")
        }
        let watcher = startWatching()
        return Opened(session: session, threadPool: threadPool, watcher: watcher, path: path)
    }

    // MARK: Turns

    /// Runs `body` (statements outside any transaction: reads) when this instance's turn comes, mapping its
    /// errors to ``BatonError``. See ``GroupCommit`` for how turns are shared.
    func withSession<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (SQLiteSession) async throws -> T
    ) async throws -> T {
        do {
            return try await commits.read(operation, body)
        } catch {
            throw storeError(error, operation: operation)
        }
    }

    /// Runs `body` as one write of this instance's next turn: atomic on the file, and committed (on the disk,
    /// with ``Configuration/Synchronous/full``) before this returns. `now` is the expiry clock read after the
    /// file's write lock was taken. An `atomic` body writes with one statement at most and throws a ``BatonError``
    /// only when it wrote nothing: it needs no savepoint (see ``GroupCommit/write(_:atomic:_:)``).
    func transaction<T: Sendable>(
        _ operation: String,
        atomic: Bool = false,
        _ body: @escaping @Sendable (SQLiteSession, _ now: Int64) async throws -> T
    ) async throws -> T {
        do {
            return try await commits.write(operation, atomic: atomic) { [now] db in try await body(db, now()) }
        } catch {
            throw storeError(error, operation: operation)
        }
    }

    /// How many operations wait for their turn now.
    var queuedOperations: Int { commits.queuedOperations }
}
