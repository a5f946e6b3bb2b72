/// A fencing token: every new term of a key gets a token strictly greater than every token the key had
/// before. Renewals keep the token. Hand it to the resource the leader writes to, so that the resource can
/// refuse a stale leader (one whose token is smaller than the largest it has seen).
public typealias FencingToken = Int64

/// Who leads a key, as far as the store can tell.
public struct LeaderInfo: Sendable, Hashable, CustomStringConvertible {
    /// The holder's identity.
    public var holder: String
    /// The fencing token of the holder's term.
    public var token: FencingToken
    /// What the leader publishes to everyone (typically its address), at most 4 KiB of UTF-8.
    public var metadata: String?
    /// The term's time to live, if the store knows it.
    public var ttl: Duration?
    /// The time left before the store expires the term, if the store can tell. A snapshot: it is not updated.
    public var remaining: Duration?

    public init(
        holder: String,
        token: FencingToken,
        metadata: String? = nil,
        ttl: Duration? = nil,
        remaining: Duration? = nil
    ) {
        self.holder = holder
        self.token = token
        self.metadata = metadata
        self.ttl = ttl
        self.remaining = remaining
    }

    /// Whether two observations describe the same term with the same published metadata
    /// (time left is ignored).
    public func isSameTerm(as other: LeaderInfo?) -> Bool {
        guard let other else { return false }
        return holder == other.holder && token == other.token && metadata == other.metadata
    }

    public var description: String {
        var text = "\(holder) (token \(token)"
        if let remaining { text += ", \(remaining) left" }
        return text + ")"
    }
}

/// A term of leadership of one key, as granted by the store.
///
/// A lease is a receipt, not a guarantee: only ``LeaderElector`` decides how long the holder may act on it
/// (see the safety rule in the documentation of ``LeaderElector``).
public struct Lease: Sendable, Hashable, CustomStringConvertible {
    /// The key led.
    public var key: String
    /// The holder's identity.
    public var holder: String
    /// The fencing token of this term.
    public var token: FencingToken
    /// The time to live the store was asked for, or less: the time the term is sure to last from the call, when
    /// the store granted it without a request of its own (see ``LeaseStore``'s expiry rule). ``LeaderElector``
    /// counts its deadline from the shorter of this and its configured ttl.
    public var ttl: Duration
    /// What the leader publishes to everyone. Changing it and calling ``LeaseStore/renew(_:ttl:)`` publishes
    /// the new value.
    public var metadata: String?

    public init(key: String, holder: String, token: FencingToken, ttl: Duration, metadata: String? = nil) {
        self.key = key
        self.holder = holder
        self.token = token
        self.ttl = ttl
        self.metadata = metadata
    }

    /// The lease as others see it.
    public var leaderInfo: LeaderInfo {
        LeaderInfo(holder: holder, token: token, metadata: metadata, ttl: ttl, remaining: nil)
    }

    public var description: String { "\(key) held by \(holder) (token \(token), ttl \(ttl))" }
}

/// The answer to ``LeaseStore/acquire(key:holder:ttl:metadata:waiting:)``.
public enum AcquireResult: Sendable, Hashable {
    /// The caller holds the key: a new term, or its own term renewed.
    case acquired(Lease)
    /// Another holder leads the key.
    case held(by: LeaderInfo)

    /// The lease, if acquired.
    public var lease: Lease? {
        if case .acquired(let lease) = self { return lease }
        return nil
    }
}

/// A sequence of leader observations for one key, as returned by ``LeaseStore/changes(key:)``.
public typealias LeaderChanges = AsyncThrowingStream<LeaderInfo?, any Error>
