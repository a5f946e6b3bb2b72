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
