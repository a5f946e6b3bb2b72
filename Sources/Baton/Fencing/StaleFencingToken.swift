/// A write refused by a fencing guard: its token is lower than one the resource has already accepted, so it comes
/// from a term that has ended (a leader that was paused, partitioned away or slow past its lease).
///
/// Thrown by ``TokenFence`` and ``FencedLedger``; `BatonPostgres`' `PostgresFencing` turns the database's refusal
/// into one, and `BatonHummingbird`'s `FencingMiddleware` answers `409 Conflict` with it. A refused write changed
/// nothing; its writer should stop the work of that term.
public struct StaleFencingToken: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the write was for: a key, or a slot's or shard's key (tokens of different resources are not compared).
    public var resource: String
    /// The token the write carried.
    public var token: FencingToken
    /// The highest token the resource had accepted when it refused the write.
    public var highest: FencingToken

    public init(resource: String, token: FencingToken, highest: FencingToken) {
        self.resource = resource
        self.token = token
        self.highest = highest
    }

    public var description: String {
        "stale fencing token \(token) for \(resource): token \(highest) was already accepted"
    }
}
