@_spi(BatonStoreKit) import Baton
import Logging
import SQLiteNIO

/// The tables of a SQLite store, and setting a connection up for them.
///
/// The layout is in the documentation of ``SQLiteLeaseStore``. Creation is idempotent, so any number of
/// processes may set up the same file at once.
enum SQLiteSchema {
    /// How long setting up a file waits out other processes' locks at least.
    static let setupPatience = Duration.seconds(5)

    /// The schema version this code writes and reads.
    static let version = 1

    /// Sets the connection up (busy timeout, WAL mode, synchronous level) and creates the tables if needed.
    ///
    /// Processes that set up a fresh file at the same moment meet locks that SQLite answers `SQLITE_BUSY` at
    /// once, without its busy handler (switching the file to WAL takes an exclusive lock); such a setup is tried
    /// again, a few milliseconds later, until the busy timeout (at least ``setupPatience``) has passed.
    /// - Throws: ``BatonError`` `storeUnavailable` if the file was written by a newer Baton; SQLite's errors.
    static func prepare(
        _ db: SQLiteSession,
        configuration: SQLiteLeaseStore.Configuration,
        path: String,
        logger: Logger
    ) async throws {
        let clock = ContinuousClock()
        // At least a few seconds, whatever the busy timeout: setting a file up happens once per process, and a
        // short busy timeout is chosen for the requests that come after.
        let deadline = clock.now.advanced(by: max(configuration.busyTimeout, setupPatience))
        var pause = Duration.milliseconds(2)
        while true {
            do {
                return try await prepareOnce(db, configuration: configuration, path: path, logger: logger)
            } catch let error as SQLiteError where error.reason.isBusy && clock.now < deadline {
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(50))
            }
        }
    }

    private static func prepareOnce(
        _ db: SQLiteSession,
        configuration: SQLiteLeaseStore.Configuration,
        path: String,
        logger: Logger
    ) async throws {
        // Replaces SQLiteNIO's busy handler, which retries forever, with SQLite's sleeping one and a limit.
        try await db.execute("PRAGMA busy_timeout = \(configuration.busyTimeout.batonMilliseconds)")
        let journalMode = try await db.rows("PRAGMA journal_mode = WAL").first?.column("journal_mode")?.string
        try await db.execute("PRAGMA synchronous = \(configuration.synchronous.pragmaValue)")
        if journalMode?.lowercased() != "wal" {
            logger.warning(
                "baton: SQLite refused WAL mode; readers will wait for writers",
                metadata: ["journal_mode": "\(journalMode ?? "unknown")"]
            )
        }
        try await db.begin()
        let stored: Int?
        do {
            for statement in statements { try await db.execute(statement) }
            try await db.execute(
                "INSERT OR IGNORE INTO baton_meta (name, value) VALUES ('schema_version', ?)",
                [.text(String(version))]
            )
            stored = try await db.rows("SELECT value FROM baton_meta WHERE name = 'schema_version'")
                .first?.column("value")?.integer
            try await db.commit()
        } catch {
            try? await db.rollback()
            throw error
        }
        guard let stored, stored <= version else {
            throw BatonError.storeUnavailable(
                "the SQLite store at \(path) has schema version \(stored.map(String.init) ?? "unknown"); "
                    + "this Baton knows version \(version) (was the file written by a newer Baton?)"
            )
        }
    }

    /// The tables, created idempotently.
    static let statements = [
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
        CREATE TABLE IF NOT EXISTS baton_waiters (
            key        TEXT NOT NULL,
            holder     TEXT NOT NULL,
            arrival    INTEGER NOT NULL,
            metadata   TEXT,
            ttl_ns     INTEGER NOT NULL,
            expires_ns INTEGER NOT NULL,
            boot_id    TEXT NOT NULL,
            PRIMARY KEY (key, holder)
        )
        """,
        "CREATE INDEX IF NOT EXISTS baton_waiters_in_order ON baton_waiters (key, arrival)",
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
}
