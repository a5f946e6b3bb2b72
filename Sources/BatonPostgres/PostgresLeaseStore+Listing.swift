@_spi(BatonStoreKit) import Baton
import PostgresNIO

extension PostgresLeaseStore {
    /// The live terms whose key starts with `prefix`, sorted by key, at most `limit`, with their time left by
    /// the server's clock.
    ///
    /// One `SELECT` over the key's primary-key index (keys sort byte by byte: `COLLATE "C"`).
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        let query = schema.leases(prefix: prefix, end: ListingLimits.upperBound(ofPrefix: prefix), limit: limit)
        return try await perform("listing of \(prefix)*") { connection, logger in
            var held: [HeldLease] = []
            let rows = try await connection.query(query, logger: logger)
            for try await (key, token, holder, metadata, ttl, remaining) in rows.decode(
                (String, Int64, String, String?, Int64?, Int64?).self
            ) {
                let leader = LeaderInfo(
                    holder: holder,
                    token: token,
                    metadata: metadata,
                    ttl: ttl.map { .milliseconds($0) },
                    remaining: remaining.map { .microseconds($0) }
                )
                held.append(HeldLease(key: key, leader: leader))
            }
            return held
        }
    }

    /// The kept rounds of `system`, the greatest name first, at most `limit`.
    ///
    /// One `SELECT` over the rounds' primary key (`COLLATE "C"`); retention is judged by the server's clock.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        let query = schema.rounds(system: system, limit: limit)
        return try await perform("listing of the rounds of \(system)") { connection, logger in
            var rounds: [RoundSummary] = []
            let rows = try await connection.query(query, logger: logger)
            for try await (round, winner, completedBy) in rows.decode((String, String?, String?).self) {
                rounds.append(RoundSummary(round: round, winner: winner, completedBy: completedBy))
            }
            return rounds
        }
    }
}
