/// The answer to ``LeaseStore/claim(system:round:candidate:retention:)``.
public enum ClaimResult: Sendable, Hashable {
    /// The candidate won the round (first claim, or the winner claiming again).
    case won
    /// Another candidate won the round.
    case lost(winner: String)

    /// Whether the candidate won.
    public var isWon: Bool { self == .won }
}

/// Who completes a round, and under which rule.
public enum Completer: Sendable, Hashable, CustomStringConvertible {
    /// A named candidate: it must be the round's winner (else ``BatonError/Code/notWinner``), and once a
    /// completion is recorded another identity is refused (``BatonError/Code/alreadyCompleted``).
    case candidate(String)
    /// An anonymous caller (the HTTP v1 default identity, the remote `ip:port`), recorded under this label.
    /// gone's rule: the first completion is recorded whoever won; a different identity after it is refused.
    case anonymous(String)

    /// The identity recorded for this completer.
    public var identity: String {
        switch self {
        case .candidate(let id), .anonymous(let id): id
        }
    }

    public var description: String {
        switch self {
        case .candidate(let id): "candidate \(id)"
        case .anonymous(let id): "anonymous \(id)"
        }
    }
}

/// The state of one round, as stores keep it.
public struct RoundRecord: Sendable, Hashable {
    /// The first candidate to claim the round, if any.
    public var winner: String?
    /// The identity whose completion is recorded, if any.
    public var completedBy: String?

    public init(winner: String? = nil, completedBy: String? = nil) {
        self.winner = winner
        self.completedBy = completedBy
    }
}

/// The rules of rounds as pure functions, so every store applies exactly the same ones inside its own
/// atomic step (a transaction, a script, a conditional write).
public enum RoundRules {
    /// The outcome of a claim on `record` (nil: no record yet) by `candidate`, and the record to store.
    public static func claim(_ record: RoundRecord?, candidate: String) -> (ClaimResult, RoundRecord) {
        var record = record ?? RoundRecord()
        guard let winner = record.winner else {
            record.winner = candidate
            return (.won, record)
        }
        return (winner == candidate ? .won : .lost(winner: winner), record)
    }

    /// The outcome of a completion on `record` by `completer`: the record to store, or the error to throw.
    public static func complete(
        _ record: RoundRecord?,
        by completer: Completer,
        system: String,
        round: String
    ) -> Result<RoundRecord, BatonError> {
        var record = record ?? RoundRecord()
        if let done = record.completedBy {
            if done == completer.identity { return .success(record) }
            return .failure(.alreadyCompleted(by: done, system: system, round: round))
        }
        if case .candidate(let name) = completer, record.winner != name {
            return .failure(.notWinner(candidate: name, system: system, round: round))
        }
        record.completedBy = completer.identity
        return .success(record)
    }
}
