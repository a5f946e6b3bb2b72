import Synchronization

/// The place of a key's state in the order a store with a queue makes them: each term has a larger token than the
/// last, and a free key comes after the term whose token it names.
@_spi(BatonStoreKit) public struct FeedVersion: Sendable, Comparable {
    /// The term's token, or the last token the key issued when it is free.
    public var token: FencingToken
    /// Whether the key is free (after the term with `token`).
    public var free: Bool

    public init(token: FencingToken, free: Bool) {
        self.token = token
        self.free = free
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.token, lhs.free ? 1 : 0) < (rhs.token, rhs.free ? 1 : 0)
    }
}

/// A key's state as a store's change message carried it: the term that started (its `remaining` is its ttl, as
/// of the message), or a free key.
@_spi(BatonStoreKit) public struct PushedLeaderState: Sendable, Equatable {
    /// The leader, nil for a free key.
    public var leader: LeaderInfo?
    public var version: FeedVersion

    /// A term that started: its version is its token.
    public static func term(_ leader: LeaderInfo) -> Self {
        Self(leader: leader, version: FeedVersion(token: leader.token, free: false))
    }

    /// A free key whose last term had `lastToken`.
    public static func free(lastToken: FencingToken) -> Self {
        Self(leader: nil, version: FeedVersion(token: lastToken, free: true))
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.version == rhs.version && lhs.leader?.holder == rhs.leader?.holder
            && lhs.leader?.metadata == rhs.leader?.metadata && lhs.leader?.ttl == rhs.leader?.ttl
    }
}

/// The last change message of each watched key, numbered in the order of arrival, for change feeds to use instead
/// of a read: a store whose change messages carry the key's state (Redis's queue scripts, PostgreSQL's trigger)
/// records each one here before it wakes the key's feeds, and each feed's ``PushedStateFeedReader`` takes it.
///
/// So a release costs the store one request (and the next leader's own acquire) however many processes follow
/// the key: none of them reads.
@_spi(BatonStoreKit) public final class PushedLeaderStates: Sendable {
    /// A message: its number, and the state it carried, if any.
    public struct Mark: Sendable {
        public var number: UInt64
        public var state: PushedLeaderState?
    }

    private struct State {
        var next: UInt64 = 1
        var latest: [String: Mark] = [:]
        /// Keys kept after the last pass that dropped keys nobody watches.
        var keptAtSweep = 0
    }

    private let state = Mutex(State())
    private let watched: @Sendable () -> [String]

    /// `watched` lists the keys that change feeds follow now (the others' messages are dropped now and then).
    public init(watched: @escaping @Sendable () -> [String]) {
        self.watched = watched
    }

    /// Records a message on `key` (a nil state: one that carried none, such as an expiry event).
    public func record(_ key: String, _ pushed: PushedLeaderState?) {
        let sweep = state.withLock { state -> Bool in
            state.latest[key] = Mark(number: state.next, state: pushed)
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

    /// Forgets every recorded state, so that each feed's next read asks the store: for when messages may have
    /// been lost (the connection that brought them closed).
    public func forgetAll() {
        state.withLock { state in
            for key in state.latest.keys {
                state.latest[key] = Mark(number: state.next, state: nil)
            }
            state.next += 1
        }
    }

    /// The last message on `key`, if any.
    public func latest(_ key: String) -> Mark? {
        state.withLock { $0.latest[key] }
    }
}

/// One change feed's reads of a key: the state the last message brought, when it came after the feed's last
/// read or message and is not older than what the feed knows, else a read of the store (`look`).
@_spi(BatonStoreKit) public final class PushedStateFeedReader: Sendable {
    private struct State {
        /// The number of the last message this feed has taken into account; nil before its first read.
        var seen: UInt64?
        var version: FeedVersion?
    }

    private let state = Mutex(State())
    private let key: String
    private let states: PushedLeaderStates
    private let look: @Sendable () async throws -> (LeaderInfo?, FeedVersion?)

    /// - Parameter look: reads the key's leader and its version from the store (nil when the read cannot tell,
    ///   such as a free key whose last token it did not read: then any later message is taken).
    public init(
        key: String,
        states: PushedLeaderStates,
        look: @escaping @Sendable () async throws -> (LeaderInfo?, FeedVersion?)
    ) {
        self.key = key
        self.states = states
        self.look = look
    }

    /// The key's current leader.
    public func read() async throws -> LeaderInfo? {
        let mark = states.latest(key)
        let pushed = state.withLock { state -> LeaderInfo?? in
            // A message published before a read may arrive after it: only one that came after the feed's last
            // read or message, carries a state and is not older than what the feed knows is taken.
            guard let seen = state.seen, let mark, mark.number > seen, let pushed = mark.state,
                state.version.map({ pushed.version >= $0 }) ?? true
            else { return nil }
            state.seen = mark.number
            state.version = pushed.version
            return .some(pushed.leader)
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
