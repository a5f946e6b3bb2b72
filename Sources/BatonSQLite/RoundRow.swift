@_spi(BatonStoreKit) import Baton
import SQLiteNIO

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
