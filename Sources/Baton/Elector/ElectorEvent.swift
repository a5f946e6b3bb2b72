/// Why a leader stopped leading.
public struct DemotionReason: Sendable, Hashable, CustomStringConvertible {
    enum Base: String, Sendable, Hashable {
        case lost
        case deadlineReached
        case resigned
        case quorumLost
    }

    let base: Base

    private init(_ base: Base) { self.base = base }

    /// The store said the term is over (a renew was refused): the key expired or passed to another holder.
    public static let lost = DemotionReason(.lost)
    /// No renew succeeded before the local deadline (`t0 + ttl − margin`): the store was slow or unreachable.
    /// The elector demoted itself without the store's word, before the term could pass to anyone else.
    public static let deadlineReached = DemotionReason(.deadlineReached)
    /// The elector resigned (``LeaderElector/resign()``, graceful shutdown, or cancellation).
    public static let resigned = DemotionReason(.resigned)
    /// Quorum mode: fewer than ``ElectorConfiguration/quorum`` members were alive in presence, or they could
    /// not be counted for a whole ttl. The elector released the key and campaigns again once enough are alive.
    public static let quorumLost = DemotionReason(.quorumLost)

    public var description: String {
        switch base {
        case .lost: "lost"
        case .deadlineReached: "deadline_reached"
        case .resigned: "resigned"
        case .quorumLost: "quorum_lost"
        }
    }
}

/// Something that happened to a ``LeaderElector``.
public enum ElectorEvent: Sendable {
    /// This elector became the leader.
    case elected(Lease)
    /// A renew succeeded: this elector's term goes on, and its deadline moved (read ``LeaderElector/timeLeft``).
    case renewed(Lease)
    /// This elector stopped leading.
    case demoted(Lease, DemotionReason)
    /// The leader of the key, as this elector last saw it, changed (nil: no leader). Also sent when this elector
    /// itself becomes the leader.
    case leaderChanged(LeaderInfo?)
    /// A store call failed; the elector retries on its own.
    case storeError(BatonError)
}

/// What a ``LeaderElector`` believes about itself now.
public enum ElectorRole: Sendable, Hashable {
    /// It leads under this lease, and its local deadline has not passed.
    case leader(Lease)
    /// Another holder leads (or nobody, while this elector campaigns).
    case follower(of: LeaderInfo?)
    /// The store cannot be reached, or the elector is not running.
    case detached

    /// The lease, if leading.
    public var lease: Lease? {
        if case .leader(let lease) = self { return lease }
        return nil
    }

    /// Whether this elector leads.
    public var isLeader: Bool { lease != nil }
}
