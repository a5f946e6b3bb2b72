/// One-shot elections: "who runs the 08:00 cleaner?"
///
/// Each round of a system has at most one winner: the first candidate to claim it. The winner claiming again
/// wins again, so retrying after a timeout is safe. The winner then records completion, which others can
/// check (for example to skip a job that already ran). Records are kept for ``retention`` (seven days by
/// default) and then dropped by the store.
///
/// ```swift
/// let election = RoundElection(store: store, system: "nightly-cleaner")
/// if try await election.claim(round: "2026-11-23", candidate: hostname) == .won {
///     try await cleanUp()
///     try await election.complete(round: "2026-11-23", candidate: hostname)
/// }
/// ```
public struct RoundElection: Sendable {
    /// Seven days.
    public static let defaultRetention: Duration = .seconds(7 * 24 * 3600)

    /// The store the rounds live in.
    public let store: LeaseStore
    /// The system whose rounds these are.
    public let system: String
    /// How long round records are kept.
    public let retention: Duration

    /// - Throws: ``BatonError`` `invalidArgument` for a malformed system name or retention.
    public init(store: LeaseStore, system: String, retention: Duration = RoundElection.defaultRetention) throws {
        try BatonValidation.name(system, "system")
        try BatonValidation.duration(retention, "retention")
        self.store = store
        self.system = system
        self.retention = retention
    }

    /// Claims `round` for `candidate`: ``ClaimResult/won`` for the first claimant (and for it again),
    /// ``ClaimResult/lost(winner:)`` for everyone else.
    public func claim(round: String, candidate: String) async throws -> ClaimResult {
        try await store.claim(system: system, round: round, candidate: candidate, retention: retention)
    }

    /// The winner of `round`, or nil.
    public func winner(round: String) async throws -> String? {
        try await store.winner(system: system, round: round)
    }

    /// Records that `candidate`, the winner, completed `round`. Repeating it is fine.
    /// - Throws: ``BatonError`` `notWinner` if `candidate` did not win; `alreadyCompleted` if another identity
    ///   completed it.
    public func complete(round: String, candidate: String) async throws {
        try await store.complete(system: system, round: round, by: .candidate(candidate), retention: retention)
    }

    /// Records a completion under gone's rule for anonymous callers: the first completion is recorded.
    public func complete(round: String, anonymous identity: String) async throws {
        try await store.complete(system: system, round: round, by: .anonymous(identity), retention: retention)
    }

    /// Who completed `round`, or nil.
    public func completion(round: String) async throws -> String? {
        try await store.completion(system: system, round: round)
    }
}
