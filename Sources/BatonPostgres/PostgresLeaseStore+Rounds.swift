@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO

extension PostgresLeaseStore {
    /// Claims a round for `candidate`: the first claim wins, the winner claiming again wins again.
    ///
    /// One statement (the function `baton_claim`: `INSERT … ON CONFLICT DO UPDATE … WHERE`, and a read of the
    /// record it left as it was) that applies ``RoundRules/claim(_:candidate:)`` under the round's row lock. A new
    /// record is kept for `retention` by the server's clock.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult
    {
        let statement = PostgresPrepared.Claim(
            system: system, round: round, candidate: candidate, retentionMilliseconds: Self.milliseconds(retention))
        let winner = try await perform("claim of round \(system)/\(round)") { [schema] connection, logger in
            try await schema.execute(statement, on: connection, logger: logger).last ?? nil
        }
        guard let winner else {
            throw BatonError.storeUnavailable("claim of round \(system)/\(round) on \(redactedURL) found no winner")
        }
        try await sweepIfDue()
        return winner == candidate ? .won : .lost(winner: winner)
    }

    /// The winner of a round, or nil if it has not been claimed or its record expired.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func winner(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.winner
    }

    /// Records the completion of a round under ``RoundRules/complete(_:by:system:round:)``, in one transaction
    /// that locks the round's row. A record created by the completion is kept for `retention`; an existing one
    /// keeps its expiry.
    /// - Throws: ``BatonError`` `notWinner`, `alreadyCompleted`, `storeUnavailable`, `timeout`.
    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        let schema = schema
        let retentionMilliseconds = Self.milliseconds(retention)
        let outcome = try await transaction("completion of round \(system)/\(round)") {
            connection,
            logger -> Result<Void, BatonError> in
            let existing = try await Self.lockRound(schema, connection, logger, system: system, round: round)
            switch RoundRules.complete(existing, by: completer, system: system, round: round) {
            case .failure(let error):
                return .failure(error)
            case .success(let record):
                if record != existing {
                    try await connection.query(
                        schema.writeRound(
                            system: system,
                            round: round,
                            record: record,
                            retentionMilliseconds: existing == nil ? retentionMilliseconds : nil
                        ),
                        logger: logger
                    )
                }
                return .success(())
            }
        }
        try outcome.get()
    }

    /// The identity whose completion of the round is recorded, or nil.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func completion(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.completedBy
    }

    private func roundRecord(system: String, round: String) async throws -> RoundRecord? {
        let query = schema.readRound(system: system, round: round)
        return try await perform("read of round \(system)/\(round)") { connection, logger in
            for try await (winner, completedBy) in try await connection.query(query, logger: logger)
                .decode((String?, String?).self)
            {
                return RoundRecord(winner: winner, completedBy: completedBy)
            }
            return nil
        }
    }

    /// Locks the round's row (creating a placeholder first) and returns its live record, or nil.
    private static func lockRound(
        _ schema: PostgresSchema,
        _ connection: PostgresConnection,
        _ logger: Logger,
        system: String,
        round: String
    ) async throws -> RoundRecord? {
        // The row can vanish between the insert and the lock: a sweep in another session may delete an expired
        // record and commit while this one waits for its lock. Then nothing is locked, and a write would update
        // no row, so insert and lock again until a row is held.
        for _ in 0..<8 {
            try await connection.query(schema.ensureRound(system: system, round: round), logger: logger)
            let rows = try await connection.query(schema.lockRound(system: system, round: round), logger: logger)
            for try await (winner, completedBy, live) in rows.decode((String?, String?, Bool).self) {
                return live ? RoundRecord(winner: winner, completedBy: completedBy) : nil
            }
        }
        throw BatonError.storeUnavailable("round \(system)/\(round) kept being deleted while it was being locked")
    }
}
