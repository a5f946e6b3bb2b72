/// What a ``GroupCommit`` runs its turns on: a resource with transactions and savepoints, used by one turn at a
/// time.
///
/// The calls are made in this order for the writes of one turn: ``begin()``; then for each write
/// ``savepoint()``, the write's body, and ``releaseSavepoint()`` (or, if the body threw,
/// ``rollbackToSavepoint()``); then ``commit()``. If any of these calls throws, ``rollback()`` undoes the whole
/// transaction. Reads run outside any transaction, after the commit.
///
/// The calls should run to their end even if the running task is cancelled: a call skipped for cancellation
/// could leave a transaction open.
protocol GroupCommitResource: Sendable {
    /// Starts the transaction of a turn's writes.
    func begin() async throws
    /// Marks the point a failing write rolls back to.
    func savepoint() async throws
    /// Keeps what the write since the last ``savepoint()`` did, as part of the transaction.
    func releaseSavepoint() async throws
    /// Undoes what the write since the last ``savepoint()`` did and ends that savepoint; the transaction goes on.
    func rollbackToSavepoint() async throws
    /// Makes the transaction's writes durable and visible.
    func commit() async throws
    /// Undoes the whole transaction.
    func rollback() async throws
}
