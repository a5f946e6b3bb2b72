@_spi(BatonStoreKit) import Baton
import SQLiteNIO
import Synchronization

extension SQLiteLeaseStore {
    /// How often an instance deletes expired round and presence rows (during a claim or a heartbeat), in
    /// nanoseconds of the expiry clock.
    static let sweepInterval: Int64 = 60 * 1_000_000_000

    /// Marks `member` of `group` alive for `ttl` from now (by the expiry clock).
    ///
    /// One `BEGIN IMMEDIATE` transaction, which now and then also deletes expired round and presence rows.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try await transaction("heartbeat of \(group)/\(member)") { [self] db, now in
            try await db.execute(
                """
                INSERT INTO baton_presence (group_name, member, expires_ns, boot_id) VALUES (?, ?, ?, ?)
                ON CONFLICT (group_name, member) DO UPDATE
                SET expires_ns = excluded.expires_ns, boot_id = excluded.boot_id
                """,
                [.text(group), .text(member), .int64(now + ttl.batonNanoseconds), .text(db.epoch)]
            )
            try await sweepIfDue(db, now: now, wall: HostClock.wallMilliseconds())
        }
    }

    /// Removes `member` from `group` at once. One `DELETE` statement.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func leave(group: String, member: String) async throws {
        try await transaction("leave of \(group)/\(member)") { db, _ in
            try await db.execute(
                "DELETE FROM baton_presence WHERE group_name = ? AND member = ?",
                [.text(group), .text(member)]
            )
        }
    }

    /// The members of `group` whose last heartbeat has not expired (and was made in this epoch, the boot),
    /// sorted.
    ///
    /// One `SELECT`; expiry is judged after the read.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func members(group: String) async throws -> [String] {
        try await withSession("members of \(group)") { [now] db in
            let rows = try await db.rows(
                "SELECT member, expires_ns, boot_id FROM baton_presence WHERE group_name = ?",
                [.text(group)]
            )
            let now = now()
            return rows.compactMap { row -> String? in
                guard row.column("boot_id")?.string == db.epoch,
                    let expires = row.column("expires_ns")?.integer, Int64(expires) > now
                else { return nil }
                return row.column("member")?.string
            }
            .sorted()
        }
    }

    /// Deletes expired round, presence and queue rows, at most once per ``sweepInterval`` per instance.
    func sweepIfDue(_ db: SQLiteSession, now: Int64, wall: Int64) async throws {
        let due = state.withLock { state -> Bool in
            if let last = state.lastSweep, now - last < Self.sweepInterval { return false }
            state.lastSweep = now
            return true
        }
        guard due else { return }
        try await db.execute("DELETE FROM baton_rounds WHERE expires_ms <= ?", [.int64(wall)])
        try await db.execute(
            "DELETE FROM baton_presence WHERE boot_id <> ? OR expires_ns <= ?",
            [.text(db.epoch), .int64(now)]
        )
        try await db.execute(
            "DELETE FROM baton_waiters WHERE boot_id <> ? OR expires_ns <= ?",
            [.text(db.epoch), .int64(now)]
        )
    }
}
