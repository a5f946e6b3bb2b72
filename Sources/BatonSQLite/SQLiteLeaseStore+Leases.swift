@_spi(BatonStoreKit) import Baton
import SQLiteNIO

extension SQLiteLeaseStore {
    /// Extends the term of `lease` to `ttl` from now and publishes `lease.metadata`, if the key is still in
    /// that term (same holder and token, not expired).
    ///
    /// One `UPDATE` in a `BEGIN IMMEDIATE` transaction (a read and an `UPDATE` when the metadata changes or the
    /// term is over). New metadata wakes the subscribers of ``changes(key:)``.
    /// - Returns: the lease with the new ttl (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `storeUnavailable`, `timeout`; `CancellationError` if
    ///   cancelled while waiting for its turn in this instance.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        handedTerms.saw(key: lease.key, token: lease.token)
        let changed = try await transaction("renew of \(lease.key)", atomic: true) { db, now in
            // The usual renew (same metadata) is one statement; the read below tells a lost term from new
            // metadata.
            let expires = now + ttl.batonNanoseconds
            let extended = try await db.rows(
                """
                UPDATE baton_leases SET ttl_ns = ?, expires_ns = ?, updated_ms = ?
                WHERE key = ? AND holder = ? AND token = ? AND boot_id = ? AND expires_ns > ? AND metadata IS ?
                RETURNING token
                """,
                [
                    .int64(ttl.batonNanoseconds), .int64(expires), .int64(HostClock.wallMilliseconds()),
                    .text(lease.key), .text(lease.holder), .int64(lease.token), .text(db.epoch), .int64(now),
                    .optionalText(lease.metadata),
                ]
            )
            if !extended.isEmpty { return false }
            guard let row = try await LeaseRow.read(db, key: lease.key), row.isLive(epoch: db.epoch, now: now),
                row.holder == lease.holder, row.token == lease.token
            else {
                throw BatonError.lost(key: lease.key)
            }
            try await db.execute(
                "UPDATE baton_leases SET metadata = ?, ttl_ns = ?, expires_ns = ?, updated_ms = ? WHERE key = ?",
                [
                    .optionalText(lease.metadata), .int64(ttl.batonNanoseconds), .int64(expires),
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
    /// otherwise. The key keeps its last token, so the next term gets a larger one; if candidates wait in the
    /// key's queue, the first of them gets the key in the same transaction (see
    /// ``acquire(key:holder:ttl:metadata:waiting:)``).
    ///
    /// One `UPDATE` statement, and the queue's head if any. A release wakes the subscribers of ``changes(key:)``
    /// in every process.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func release(_ lease: Lease) async throws {
        handedTerms.saw(key: lease.key, token: lease.token)
        let released = try await transaction("release of \(lease.key)", atomic: true) { db, now in
            let rows = try await db.rows(
                """
                UPDATE baton_leases
                SET holder = NULL, metadata = NULL, ttl_ns = NULL, expires_ns = NULL, boot_id = NULL, updated_ms = ?
                WHERE key = ? AND holder = ? AND token = ?
                RETURNING token
                """,
                [.int64(HostClock.wallMilliseconds()), .text(lease.key), .text(lease.holder), .int64(lease.token)]
            )
            guard !rows.isEmpty else { return false }
            try await Self.handToHead(db, key: lease.key, lastToken: lease.token, now: now)
            return true
        }
        if released { publishChange(of: lease.key) }
    }

    /// Takes `holder` out of `key`'s queue at once: one `DELETE` of its place, in a write transaction of the
    /// group commit (a term it holds is left alone).
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func leaveQueue(key: String, holder: String) async throws {
        handedTerms.stopped(key: key, holder: holder)
        try await transaction("leaving the queue of \(key)") { db, _ in
            try await db.execute(
                "DELETE FROM baton_waiters WHERE key = ? AND holder = ?", [.text(key), .text(holder)])
        }
    }

    /// The leader of `key` with its time left, or nil if the key is free or its term expired.
    ///
    /// One `SELECT`; the time left is measured after the read, so it is never overstated.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func current(key: String) async throws -> LeaderInfo? {
        try await withSession("read of \(key)") { [now] db in
            let row = try await LeaseRow.read(db, key: key)
            let now = now()
            guard let row, row.isLive(epoch: db.epoch, now: now) else { return nil }
            return row.info(now: now)
        }
    }
}
