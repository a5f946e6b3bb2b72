@_spi(BatonStoreKit) import Baton
import SQLiteNIO

/// A row of `baton_leases`.
struct LeaseRow: Sendable {
    var token: Int64
    var holder: String?
    var metadata: String?
    /// Nanoseconds.
    var ttl: Int64?
    /// Nanoseconds of the expiry clock, valid under `epoch`.
    var expires: Int64?
    var epoch: String?

    /// Whether the row holds a live term under the clock's `epoch` at `now`.
    func isLive(epoch currentEpoch: String, now: Int64) -> Bool {
        holder != nil && epoch == currentEpoch && (expires ?? .min) > now
    }

    /// The leader this row records, with its time left at `now`.
    func info(now: Int64) -> LeaderInfo {
        LeaderInfo(
            holder: holder ?? "",
            token: token,
            metadata: metadata,
            ttl: ttl.map { .nanoseconds($0) },
            remaining: .nanoseconds((expires ?? now) - now)
        )
    }

    /// The row of `key`, or nil if the key was never acquired.
    static func read(_ db: SQLiteSession, key: String) async throws -> LeaseRow? {
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
            epoch: row.column("boot_id")?.string
        )
    }
}

/// A row of `baton_rounds`: the round's record and the end of its retention.
struct RoundRow: Sendable {
    var record: RoundRecord
    /// Unix milliseconds.
    var expires: Int64

    /// The live record of a round at wall time `wall` (Unix milliseconds), or nil.
    static func read(_ db: SQLiteSession, system: String, round: String, wall: Int64) async throws -> RoundRow? {
        let rows = try await db.rows(
            """
            SELECT winner, completed_by, expires_ms FROM baton_rounds
            WHERE system = ? AND round = ? AND expires_ms > ?
            """,
            [.text(system), .text(round), .int64(wall)]
        )
        guard let row = rows.first, let expires = row.column("expires_ms")?.integer else { return nil }
        let record = RoundRecord(winner: row.column("winner")?.string, completedBy: row.column("completed_by")?.string)
        return RoundRow(record: record, expires: Int64(expires))
    }

    /// Writes the round's row, replacing any.
    static func write(_ db: SQLiteSession, system: String, round: String, record: RoundRecord, expires: Int64)
        async throws
    {
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
}

extension SQLiteData {
    static func int64(_ value: Int64) -> SQLiteData { .integer(SQLiteInt64(value)) }

    static func optionalText(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
}
