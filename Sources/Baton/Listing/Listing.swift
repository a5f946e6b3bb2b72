/// A lease that is held, as a listing shows it: its key and its leader.
public struct HeldLease: Sendable, Hashable, CustomStringConvertible {
    /// The key led.
    public var key: String
    /// Who leads it: holder, token, metadata, and the time left as far as the store can tell.
    public var leader: LeaderInfo

    public init(key: String, leader: LeaderInfo) {
        self.key = key
        self.leader = leader
    }

    public var description: String { "\(key) held by \(leader)" }
}

/// The answer to ``LeaseStore/leases(prefix:limit:)``: the held leases under a prefix, sorted by key.
public struct LeaseListing: Sendable, Hashable {
    /// The held leases, sorted by key (in the byte order of their UTF-8), at most the limit asked for.
    public var leases: [HeldLease]
    /// Whether more leases are held under the prefix than the limit let through: ask with a longer prefix (or a
    /// larger limit) to see the rest.
    public var isTruncated: Bool

    public init(leases: [HeldLease], isTruncated: Bool) {
        self.leases = leases
        self.isTruncated = isTruncated
    }
}

/// One round of a system, as a listing shows it.
public struct RoundSummary: Sendable, Hashable, CustomStringConvertible {
    /// The round's name.
    public var round: String
    /// The first candidate to claim it, if any.
    public var winner: String?
    /// The identity whose completion is recorded, if any.
    public var completedBy: String?

    public init(round: String, winner: String? = nil, completedBy: String? = nil) {
        self.round = round
        self.winner = winner
        self.completedBy = completedBy
    }

    /// The round with the record a store keeps for it.
    public init(round: String, record: RoundRecord) {
        self.init(round: round, winner: record.winner, completedBy: record.completedBy)
    }

    public var description: String {
        "\(round): won by \(winner ?? "nobody"), completed by \(completedBy ?? "nobody")"
    }
}

/// The answer to ``LeaseStore/rounds(system:limit:)``: the recorded rounds of a system, the newest name first.
public struct RoundListing: Sendable, Hashable {
    /// The rounds whose records are kept, sorted by name in descending byte order of their UTF-8 (so rounds
    /// named by date or time, as `baton cron` names them, come newest first), at most the limit asked for.
    public var rounds: [RoundSummary]
    /// Whether more rounds are recorded than the limit let through.
    public var isTruncated: Bool

    public init(rounds: [RoundSummary], isTruncated: Bool) {
        self.rounds = rounds
        self.isTruncated = isTruncated
    }
}

/// The limits and orders of listings, shared by the front, the stores and the HTTP service.
public enum ListingLimits {
    /// How many leases a listing returns unless asked otherwise: 1,000.
    public static let defaultLeases = 1000
    /// The most leases one listing may return: 10,000.
    public static let maxLeases = 10_000
    /// How many rounds a listing returns unless asked otherwise: 100.
    public static let defaultRounds = 100
    /// The most rounds one listing may return: 1,000.
    public static let maxRounds = 1000
    /// The longest prefix, in UTF-8 bytes (the longest key).
    public static let maxPrefixBytes = 256

    /// Whether `a` sorts before `b` in listings: the byte order of their UTF-8, which every store can keep
    /// (SQL's `C` collation, etcd's and S3's key order).
    public static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Whether `key` starts with `prefix`, byte by byte (so a prefix ending inside a combining sequence still
    /// matches the keys that start with its bytes).
    public static func key(_ key: String, hasPrefix prefix: String) -> Bool {
        key.utf8.starts(with: prefix.utf8)
    }

    /// The least string above every string that starts with `prefix`, for a range `key >= prefix AND key < end`
    /// in byte order; nil when there is none (an empty prefix, or one of only U+10FFFF) and the range is open.
    ///
    /// UTF-8's byte order is the order of code points, so raising the last code point (skipping surrogates)
    /// bounds exactly the strings that start with `prefix`.
    public static func upperBound(ofPrefix prefix: String) -> String? {
        var scalars = Array(prefix.unicodeScalars)
        while let last = scalars.popLast() {
            var next = last.value + 1
            if next == 0xD800 { next = 0xE000 }
            if let scalar = Unicode.Scalar(next) {
                scalars.append(scalar)
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars)
                return String(view)
            }
        }
        return nil
    }
}
