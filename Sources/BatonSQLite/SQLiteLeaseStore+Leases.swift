@_spi(BatonStoreKit) import Baton
import SQLiteNIO

extension SQLiteLeaseStore {
    /// Takes `key` for `holder` if it is free or expired (a new term, with the key's last token plus one), or
    /// renews it if `holder` holds it (same token, new ttl and metadata).
    ///
    /// One `BEGIN IMMEDIATE` transaction. A new term, a release or new metadata wakes the subscribers of
    /// ``changes(key:)`` in every process.
    /// - Returns: ``AcquireResult/acquired(_:)``, or ``AcquireResult/held(by:)`` with the leader and its time left.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance (nothing was done then).
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        let (result, changed) = try await transaction("acquire of \(key)", atomic: true) { db, now in
            let row = try await LeaseRow.read(db, key: key)
            let wall = HostClock.wallMilliseconds()
            let expires = now + ttl.batonNanoseconds
            if let row, row.isLive(epoch: db.epoch, now: now), let current = row.holder {
                if current != holder {
                    return (AcquireResult.held(by: row.info(now: now)), false)
                }
                try await db.execute(
                    """
                    UPDATE baton_leases SET metadata = ?, ttl_ns = ?, expires_ns = ?, updated_ms = ?
                    WHERE key = ?
                    """,
                    [.optionalText(metadata), .int64(ttl.batonNanoseconds), .int64(expires), .int64(wall), .text(key)]
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
                    .int64(expires), .text(db.epoch), .int64(wall),
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
    /// One `UPDATE` in a `BEGIN IMMEDIATE` transaction (a read and an `UPDATE` when the metadata changes or the
    /// term is over). New metadata wakes the subscribers of ``changes(key:)``.
    /// - Returns: the lease with the new ttl (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `storeUnavailable`, `timeout`; `CancellationError` if
    ///   cancelled while waiting for its turn in this instance.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
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
    /// otherwise. The key keeps its last token, so the next term gets a larger one.
    ///
    /// One `UPDATE` statement. A release wakes the subscribers of ``changes(key:)`` in every process.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func release(_ lease: Lease) async throws {
        let released = try await transaction("release of \(lease.key)", atomic: true) { db, _ in
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
