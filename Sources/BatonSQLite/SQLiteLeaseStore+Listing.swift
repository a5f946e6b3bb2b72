@_spi(BatonStoreKit) import Baton
import SQLiteNIO

extension SQLiteLeaseStore {
    /// The live terms whose key starts with `prefix`, sorted by key, at most `limit`.
    ///
    /// One `SELECT` over the key's primary-key index, from `prefix` to the least string above every key that
    /// starts with it (SQLite compares text byte by byte); the time left is measured after the read.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        try await withSession("listing of \(prefix)*") { [now] db in
            let rows = try await db.rows(
                """
                SELECT key, token, holder, metadata, ttl_ns, expires_ns FROM baton_leases
                WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) AND holder IS NOT NULL AND boot_id = ?3
                    AND expires_ns > ?4
                ORDER BY key LIMIT ?5
                """,
                [
                    .text(prefix), .optionalText(ListingLimits.upperBound(ofPrefix: prefix)), .text(db.epoch),
                    .int64(now()), .int64(Int64(limit)),
                ]
            )
            let now = now()
            return rows.compactMap { row -> HeldLease? in
                guard let key = row.column("key")?.string, let token = row.column("token")?.integer else { return nil }
                let lease = LeaseRow(
                    token: Int64(token),
                    holder: row.column("holder")?.string,
                    metadata: row.column("metadata")?.string,
                    ttl: row.column("ttl_ns")?.integer.map(Int64.init),
                    expires: row.column("expires_ns")?.integer.map(Int64.init),
                    epoch: db.epoch
                )
                guard lease.isLive(epoch: db.epoch, now: now) else { return nil }
                return HeldLease(key: key, leader: lease.info(now: now))
            }
        }
    }

    /// The kept rounds of `system`, the greatest name first, at most `limit`.
    ///
    /// One `SELECT` over the rounds' primary key; retention is judged by the wall clock, as for every round.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        try await withSession("listing of the rounds of \(system)") { db in
            let rows = try await db.rows(
                """
                SELECT round, winner, completed_by FROM baton_rounds
                WHERE system = ? AND expires_ms > ? ORDER BY round DESC LIMIT ?
                """,
                [.text(system), .int64(HostClock.wallMilliseconds()), .int64(Int64(limit))]
            )
            return rows.compactMap { row in
                guard let round = row.column("round")?.string else { return nil }
                return RoundSummary(
                    round: round,
                    winner: row.column("winner")?.string,
                    completedBy: row.column("completed_by")?.string
                )
            }
        }
    }
}
