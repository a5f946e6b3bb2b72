import Synchronization

/// What a store with a queue knows of its own waiting candidates, so that one handed the key by a release can
/// take the term from the change message that says so, without a request (for stores whose messages carry the
/// key's state: Redis's queue scripts, PostgreSQL's notifications).
///
/// A release (or an expiry's hand-on) starts the next candidate's term at the server's time `h`, for the ttl of
/// that candidate's last waiting acquire. Every waiting acquire the server refused was served before `h`: a
/// refusal names another leader, whose term started before the handed one (tokens only rise), and an acquire
/// served after `h` would have found the candidate's own term and renewed it. So the local time a refused waiting
/// acquire was sent is earlier than `h`, and the handed term lasts at least until that time plus the ttl. That is
/// what the term is promised for: ``handedTerm(key:holder:ttl:metadata:pushed:)`` answers a lease whose ttl is the
/// time left until then (when more than half the ttl is left), and the holder's next renew extends it.
///
/// A message may arrive late, or be the last one kept while the key has moved on. A term is taken from a message
/// only if its token is greater than every token this store has seen for the key in an answer since the
/// candidate's refusal (refusals, grants, renews, releases, reads), and only once: a term the holder already took,
/// gave back or lost is never taken again from an old message.
///
/// "Once" is this instance's knowledge. A holder that also asks through another instance of the store (a client of
/// several `baton serve` replicas) may take its handed term there and release it, while this instance's messages
/// are late (its connection silent, its reader behind): the message it kept still shows the term handed, with no
/// token above it. So where a holder may ask elsewhere, ``holderMayAskElsewhere`` is set for the acquire, and no
/// term is taken without a request: the store asks the server, which knows.
@_spi(BatonStoreKit) public final class HandedTerms: Sendable {
    /// Set around an acquire whose holder may also ask through other instances of the store (see the type's
    /// documentation): then ``handedTerm(key:holder:ttl:metadata:pushed:)`` and
    /// ``handedTermFromRead(key:holder:ttl:metadata:)`` answer nil, and the store asks the server.
    @TaskLocal public static var holderMayAskElsewhere = false

    private struct Waiter {
        /// When the latest refused waiting acquire was sent, on the store's clock.
        var sentAt: Duration
        var ttl: Duration
        var metadata: String?
    }

    private struct KeyState {
        var waiters: [String: Waiter] = [:]
        /// The greatest token seen for the key since its first waiter here was refused.
        var highest: FencingToken = 0
        /// The term the store's latest read of the key found, with when it expires on the store's clock (for a
        /// store whose reads tell it exactly: ``read(key:leader:expiresAt:)``).
        var lastRead: (leader: LeaderInfo, expiresAt: Duration)?
    }

    private struct State {
        var keys: [String: KeyState] = [:]
        /// Refusals recorded since the last sweep of places whose holders stopped asking.
        var sinceSweep = 0
    }

    private let clock: BatonClock
    private let state = Mutex(State())

    public init(clock: BatonClock) {
        self.clock = clock
        _ = Self.runtimeWarmUp
    }

    /// A throwaway instance taken once per process through a refusal and a handed term, so that the Swift runtime's
    /// first-time work for the types they use (see `LeaderElector.runtimeWarmUp`) is not done on an election's
    /// path.
    private static let runtimeWarmUp: Bool = {
        let terms = HandedTerms(warmingUpWith: .continuous)
        let leader = LeaderInfo(holder: "a", token: 1, ttl: .seconds(10))
        terms.refused(
            key: "k", holder: "b", ttl: .seconds(10), metadata: nil, sentAt: terms.clock.now(), leader: leader)
        let handed = LeaderInfo(holder: "b", token: 2, ttl: .seconds(10))
        return terms.handedTerm(key: "k", holder: "b", ttl: .seconds(10), metadata: nil, pushed: .term(handed)) != nil
    }()

    private init(warmingUpWith clock: BatonClock) {
        self.clock = clock
    }

    /// A waiting acquire of `holder` sent at `sentAt` (the store's clock, read before sending) for `ttl` and
    /// `metadata` was refused: `leader` holds the key and `holder` keeps its place in the queue.
    public func refused(
        key: String, holder: String, ttl: Duration, metadata: String?, sentAt: Duration, leader: LeaderInfo
    ) {
        let now = clock.now()
        state.withLock { state in
            var entry = state.keys[key] ?? KeyState()
            let previous = entry.waiters[holder]?.sentAt ?? sentAt
            entry.waiters[holder] = Waiter(sentAt: max(previous, sentAt), ttl: ttl, metadata: metadata)
            entry.highest = max(entry.highest, leader.token)
            state.keys[key] = entry
            // Now and then, the places of holders that stopped asking (gone from the queue by now) are dropped,
            // with the keys left without any: a long-running server whose clients went away keeps nothing of them.
            state.sinceSweep += 1
            if state.sinceSweep >= max(1024, state.keys.count) {
                state.sinceSweep = 0
                for (key, var entry) in state.keys {
                    entry.waiters = entry.waiters.filter { $0.value.sentAt + $0.value.ttl * 2 >= now }
                    state.keys[key] = entry.waiters.isEmpty ? nil : entry
                }
            }
        }
    }

    /// How many keys have waiting candidates recorded (for tests).
    public var keysWithWaiters: Int { state.withLock { $0.keys.count } }

    /// An answer of the store named `token` for `key` (a grant, a refusal, a renew, a release, a read).
    public func saw(key: String, token: FencingToken) {
        state.withLock { state in
            guard var entry = state.keys[key], token > entry.highest else { return }
            entry.highest = token
            state.keys[key] = entry
        }
    }

    /// `holder` no longer waits for `key` (it took the key, or left the queue).
    public func stopped(key: String, holder: String) {
        state.withLock { state in
            guard var entry = state.keys[key], entry.waiters.removeValue(forKey: holder) != nil else { return }
            state.keys[key] = entry.waiters.isEmpty ? nil : entry
        }
    }

    /// A read of the store (a change feed's) found `leader`'s term, expiring at `expiresAt` on the store's clock
    /// (or later): kept, while the store has waiters for `key`, for ``handedTermFromRead(key:holder:ttl:metadata:)``.
    /// A read that found the key free is passed with a nil `leader`.
    public func read(key: String, leader: LeaderInfo?, expiresAt: Duration) {
        state.withLock { state in
            guard var entry = state.keys[key] else { return }
            entry.lastRead = leader.map { ($0, expiresAt) }
            state.keys[key] = entry
        }
    }

    /// The term the store's latest read (``read(key:leader:expiresAt:)``) found handed to `holder`, if it may be
    /// taken without a request: for a store whose reads tell when a term expires on its own clock (SQLite, on one
    /// host's monotonic clock), the lease is promised until then. The same rules as
    /// ``handedTerm(key:holder:ttl:metadata:pushed:)`` otherwise: only a candidate still waiting here, a token
    /// above every token seen since its refusal, more than half the ttl left, once.
    public func handedTermFromRead(key: String, holder: String, ttl: Duration, metadata: String?) -> Lease? {
        guard !Self.holderMayAskElsewhere else { return nil }
        let now = clock.now()
        return state.withLock { state -> Lease? in
            guard var entry = state.keys[key], let read = entry.lastRead, let waiter = entry.waiters[holder],
                read.leader.holder == holder, read.leader.metadata == metadata, read.leader.ttl == ttl,
                waiter.ttl == ttl, waiter.metadata == metadata, read.leader.token > entry.highest
            else { return nil }
            let left = read.expiresAt - now
            guard left > ttl / 2 else { return nil }
            entry.highest = read.leader.token
            entry.waiters[holder] = nil
            state.keys[key] = entry.waiters.isEmpty ? nil : entry
            return Lease(key: key, holder: holder, token: read.leader.token, ttl: left, metadata: metadata)
        }
    }

    /// The term `pushed` says was handed to `holder`, if it may be taken without a request (see the type's
    /// documentation): the lease promised until the latest refused waiting acquire's send time plus `ttl`, nil
    /// otherwise (then the store asks the server).
    public func handedTerm(key: String, holder: String, ttl: Duration, metadata: String?, pushed: PushedLeaderState?)
        -> Lease?
    {
        guard !Self.holderMayAskElsewhere, let pushed, !pushed.version.free, let leader = pushed.leader,
            leader.holder == holder, leader.metadata == metadata, leader.ttl == ttl
        else { return nil }
        let now = clock.now()
        return state.withLock { state -> Lease? in
            guard var entry = state.keys[key], let waiter = entry.waiters[holder], waiter.ttl == ttl,
                waiter.metadata == metadata, leader.token > entry.highest
            else { return nil }
            let left = waiter.sentAt + ttl - now
            guard left > ttl / 2 else { return nil }
            entry.highest = leader.token
            entry.waiters[holder] = nil
            state.keys[key] = entry.waiters.isEmpty ? nil : entry
            return Lease(key: key, holder: holder, token: leader.token, ttl: left, metadata: metadata)
        }
    }
}
