import NIOCore
import SQLiteNIO

/// Statements on a store's connection, for the operations of one turn of its ``GroupCommit``.
///
/// Statements are SQLiteNIO's async calls, which skip a statement not yet started when the calling task is
/// cancelled (that could leave a transaction open and the file's write lock taken): they run only in the store's
/// turns, in a task that is never cancelled, and in the setup of `run()`, whose connection is closed if it is.
struct SQLiteSession: GroupCommitResource {
    let connection: SQLiteConnection
    /// The epoch of the store's expiry clock (the boot id): rows written under another one have expired.
    let epoch: String

    /// The rows `sql` returns.
    func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        // The async call answers from the store's SQLite thread, without a hop through an event loop. It skips a
        // statement if the calling task is cancelled, and the turns run in a task that is never cancelled (see
        // ``SQLiteLeaseStore/run()``).
        try await connection.query(sql, binds)
    }

    /// Runs `sql`, ignoring any rows.
    func execute(_ sql: String, _ binds: [SQLiteData] = []) async throws {
        _ = try await rows(sql, binds)
    }

    /// `BEGIN IMMEDIATE`: takes the file's write lock first (waiting up to the busy timeout), so the reads of the
    /// transaction see what it then writes over.
    func begin() async throws { try await execute("BEGIN IMMEDIATE") }

    func savepoint() async throws { try await execute("SAVEPOINT baton_write") }

    func releaseSavepoint() async throws { try await execute("RELEASE baton_write") }

    func rollbackToSavepoint() async throws {
        try await execute("ROLLBACK TO baton_write")
        try await execute("RELEASE baton_write")
    }

    func commit() async throws { try await execute("COMMIT") }

    func rollback() async throws { try await execute("ROLLBACK") }
}
