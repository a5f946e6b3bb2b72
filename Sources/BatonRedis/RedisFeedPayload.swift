@_spi(BatonStoreKit) import Baton
import Synchronization

/// What a queue script (``RedisQueueScripts``) publishes on a key's change channel: the term that just started,
/// or that the key is now free with nobody waiting. A change feed that receives it knows the key's state without
/// reading the server, so a release costs one request (and the next leader's own acquire) however many processes
/// follow the key.
///
/// Format: `q1 T <token> <ttl ms> <0|1 has metadata> <holder's length in bytes> <holder><metadata>` for a term,
/// `q1 F <last token>` for a free key. Any other message (a token alone, as Redlock and renews with new metadata
/// publish) carries no state: the feed reads the server.
enum RedisFeedPayload: Sendable, Equatable {
    /// A term that started when the message was published: its `remaining` is its ttl.
    case term(LeaderInfo)
    /// The key is free and nobody waits; the last token the key issued.
    case free(lastToken: FencingToken)

    init?(_ message: String) {
        guard message.utf8.starts(with: "q1 ".utf8) else { return nil }
        let fields = message.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: false)
        switch fields.count >= 3 ? fields[1] : "" {
        case "F":
            guard fields.count == 3, let last = FencingToken(fields[2]) else { return nil }
            self = .free(lastToken: last)
        case "T":
            guard fields.count == 7, let token = FencingToken(fields[2]), let ttl = Int64(fields[3]),
                let hasMetadata = Int(fields[4]), let length = Int(fields[5])
            else { return nil }
            let rest = fields[6].utf8
            guard length >= 0, length <= rest.count else { return nil }
            let split = rest.index(rest.startIndex, offsetBy: length)
            guard let holder = String(rest[..<split]), let metadata = String(rest[split...]) else { return nil }
            self = .term(
                LeaderInfo(
                    holder: holder,
                    token: token,
                    metadata: hasMetadata == 1 ? metadata : nil,
                    ttl: .milliseconds(ttl),
                    remaining: .milliseconds(ttl)
                ))
        default:
            return nil
        }
    }

    /// The leader it names.
    var leader: LeaderInfo? {
        if case .term(let info) = self { return info }
        return nil
    }

    /// Orders the states of one key: a term by its token, a free key after the term whose token it names.
    var version: RedisFeedVersion {
        switch self {
        case .term(let info): RedisFeedVersion(token: info.token, free: false)
        case .free(let last): RedisFeedVersion(token: last, free: true)
        }
    }
}

/// The order of a key's states as the queue scripts make them: each term has a larger token than the last, and
/// a free key comes after the term it followed.
struct RedisFeedVersion: Sendable, Comparable {
    var token: FencingToken
    var free: Bool

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.token, lhs.free ? 1 : 0) < (rhs.token, rhs.free ? 1 : 0)
    }
}

/// The last message each watched key's change channel brought, numbered in the order of arrival, for the change
/// feeds to use instead of a read (see ``RedisFeedPayload``).
final class RedisFeedPayloads: Sendable {
    /// A message: its number, and its state if it carried one.
    struct Mark: Sendable {
        var number: UInt64
        var payload: RedisFeedPayload?
    }

    private struct State {
        var next: UInt64 = 1
        var latest: [String: Mark] = [:]
        /// Keys kept after the last pass that dropped keys nobody watches.
        var keptAtSweep = 0
    }

    private let state = Mutex(State())
    private let watched: @Sendable () -> [String]

    /// `watched` lists the keys that change feeds follow now.
    init(watched: @escaping @Sendable () -> [String]) {
        self.watched = watched
    }

    /// Records a message on `key`'s channels (nil: one without a state, such as an expiry event).
    func record(_ key: String, _ payload: RedisFeedPayload?) {
        let sweep = state.withLock { state -> Bool in
            state.latest[key] = Mark(number: state.next, payload: payload)
            state.next += 1
            return state.latest.count > 2 * state.keptAtSweep + 1024
        }
        guard sweep else { return }
        let keep = Set(watched())
        state.withLock { state in
            state.latest = state.latest.filter { keep.contains($0.key) }
            state.keptAtSweep = state.latest.count
        }
    }

    /// The last message on `key`'s channels, if any.
    func latest(_ key: String) -> Mark? {
        state.withLock { $0.latest[key] }
    }
}

/// One change feed's reads of a key on one server with a queue: the state a message brought when it is newer
/// than what the feed has seen, else a read of the server (``RedisQueueScripts/look``).
final class RedisQueueFeedReader: Sendable {
    private struct State {
        /// The number of the last message this feed has taken into account; nil before its first read.
        var seen: UInt64?
        var version: RedisFeedVersion?
    }

    private let state = Mutex(State())
    private let key: String
    private let payloads: RedisFeedPayloads
    private let look: @Sendable () async throws -> (LeaderInfo?, RedisFeedVersion)

    init(
        key: String,
        payloads: RedisFeedPayloads,
        look: @escaping @Sendable () async throws -> (LeaderInfo?, RedisFeedVersion)
    ) {
        self.key = key
        self.payloads = payloads
        self.look = look
    }

    /// The key's current leader (or the head of its queue, which a look makes leader).
    func read() async throws -> LeaderInfo? {
        let mark = payloads.latest(key)
        let pushed = state.withLock { state -> LeaderInfo?? in
            // Only a message that came after the feed's last read or message, carries a state, and is not older
            // than what the feed knows: a message published before a read may arrive after it.
            guard let seen = state.seen, let mark, mark.number > seen, let payload = mark.payload,
                state.version.map({ payload.version >= $0 }) ?? true
            else { return nil }
            state.seen = mark.number
            state.version = payload.version
            return .some(payload.leader)
        }
        if let pushed { return pushed }
        let (leader, version) = try await look()
        state.withLock { state in
            // Messages that arrive from here on are weighed against this read.
            state.seen = max(state.seen ?? 0, mark?.number ?? 0)
            state.version = version
        }
        return leader
    }
}
