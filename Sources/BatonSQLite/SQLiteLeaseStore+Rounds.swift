@_spi(BatonStoreKit) import Baton
import SQLiteNIO

extension SQLiteLeaseStore {
    /// Claims a round for `candidate` under ``RoundRules/claim(_:candidate:)``: the first claim wins, the winner
    /// claiming again wins again. A new record is kept for `retention` (by the wall clock).
    ///
    /// A claim that changes nothing (the round is decided: a loser's claim, or the winner's again) is answered
    /// by one read, without the file's write lock. Otherwise one `BEGIN IMMEDIATE` transaction reads again,
    /// decides and writes, and now and then also deletes expired round, presence and queue rows.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func claim(
        system: String,
        round: String,
        candidate: String,
        retention: Duration
    ) async throws -> ClaimResult {
        // A decided round stays decided until its record expires, so the answer of a read that finds it holds.
        if let decided = try await roundRecord(system: system, round: round) {
            let (result, record) = RoundRules.claim(decided, candidate: candidate)
            if record == decided { return result }
        }
        return try await transaction("claim of \(system)/\(round)", atomic: true) { [self] db, now in
            let wall = HostClock.wallMilliseconds()
            let existing = try await RoundRow.read(db, system: system, round: round, wall: wall)
            let (result, record) = RoundRules.claim(existing?.record, candidate: candidate)
            if record != existing?.record {
                try await RoundRow.write(
                    db, system: system, round: round, record: record, expires: wall + retention.batonMilliseconds
                )
            }
            try await sweepIfDue(db, now: now, wall: wall)
            return result
        }
    }

    /// The winner of a round, or nil if it was not claimed or its record expired.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func winner(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.winner
    }

    /// Records a completion under ``RoundRules/complete(_:by:system:round:)``. A record created by the completion
    /// is kept for `retention`; an existing record keeps its expiry.
    ///
    /// One `BEGIN IMMEDIATE` transaction.
    /// - Throws: ``BatonError`` `notWinner`, `alreadyCompleted`, `storeUnavailable`, `timeout`;
    ///   `CancellationError` if cancelled while waiting for its turn in this instance.
    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await transaction("completion of \(system)/\(round)") { db, _ in
            let wall = HostClock.wallMilliseconds()
            let stored = try await RoundRow.read(db, system: system, round: round, wall: wall)
            let record = try RoundRules.complete(stored?.record, by: completer, system: system, round: round).get()
            if record != stored?.record {
                try await RoundRow.write(
                    db, system: system, round: round, record: record,
                    expires: stored?.expires ?? wall + retention.batonMilliseconds
                )
            }
        }
    }

    /// The identity whose completion of the round is recorded, or nil.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance.
    public func completion(system: String, round: String) async throws -> String? {
        try await roundRecord(system: system, round: round)?.completedBy
    }

    private func roundRecord(system: String, round: String) async throws -> RoundRecord? {
        try await withSession("read of round \(system)/\(round)") { db in
            try await RoundRow.read(db, system: system, round: round, wall: HostClock.wallMilliseconds())?.record
        }
    }
}
