import NIOCore
import SQLiteNIO

/// Statements on a store's connection, for the operations of one turn of its ``GroupCommit``.
///
/// Every statement runs to its end even if the calling task is cancelled (SQLiteNIO's async calls would skip a
/// statement not yet started, which could leave a transaction open and the file's write lock taken).
struct SQLiteSession: GroupCommitResource {
    let connection: SQLiteConnection
    /// The epoch of the store's expiry clock (the boot id): rows written under another one have expired.
    let epoch: String

    /// The rows `sql` returns.
    func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let answer: EventLoopFuture<[SQLiteRow]> = connection.query(sql, binds)
        return try await answer.get()
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
