import ServiceLifecycle
import Synchronization

/// A store held in this process's memory: the reference implementation of ``LeaseStoreDriver``.
///
/// Use it for tests, for electing among tasks of one process, and as the model the other stores are checked
/// against. Every operation is one critical section under a lock, so it is atomic. Expiry is judged by the
/// injected clock (a `ManualClock` in tests), changes are pushed to waiting candidates at once, and expiries
/// are seen by a timer at the term's remaining time. Nothing survives the process.
public final class MemoryLeaseStore: LeaseStoreDriver {
    /// `memory`.
    public var storeName: String { "memory" }
    /// False: the store answers without ``run()``.
    public var needsRun: Bool { false }

    private struct Term {
        var holder: String
        var token: FencingToken
        var ttl: Duration
        var expiresAt: Duration
        var metadata: String?
    }

    private struct RoundKey: Hashable {
        var system: String
        var round: String
    }

    private struct StoredRound {
        var record: RoundRecord
        var expiresAt: Duration
    }

    private struct State {
        var terms: [String: Term] = [:]
        /// The last token issued per key; kept after release and expiry so tokens never go back.
        var lastToken: [String: FencingToken] = [:]
        var rounds: [RoundKey: StoredRound] = [:]
        var presence: [String: [String: Duration]] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let clock: BatonClock
    private let signals = ChangeSignals()
    private let pollInterval: Duration?

    /// Creates an empty store.
    /// - Parameters:
    ///   - clock: judges expiry; `ManualClock` from `BatonTestKit` makes expiry deterministic in tests.
    ///   - pollInterval: how often ``changes(key:)`` re-reads without a signal (nil: only on signals and at
    ///     expiry, which is enough in one process).
    public init<C: Clock>(clock: C = ContinuousClock(), pollInterval: Duration? = nil) where C.Duration == Duration {
        self.clock = BatonClock(clock)
        self.pollInterval = pollInterval
    }

    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        let now = clock.now()
        let (result, changed) = try state.withLock { state throws(BatonError) -> (AcquireResult, Bool) in
            try Self.checkOpen(state)
            if let term = state.terms[key], term.expiresAt > now {
                if term.holder != holder {
                    return (.held(by: Self.info(term, now: now)), false)
                }
                var renewed = term
                renewed.ttl = ttl
                renewed.expiresAt = now + ttl
                renewed.metadata = metadata
                state.terms[key] = renewed
                let lease = Lease(key: key, holder: holder, token: term.token, ttl: ttl, metadata: metadata)
                return (.acquired(lease), term.metadata != metadata)
            }
            let token = (state.lastToken[key] ?? 0) + 1
            state.lastToken[key] = token
            state.terms[key] = Term(holder: holder, token: token, ttl: ttl, expiresAt: now + ttl, metadata: metadata)
            return (.acquired(Lease(key: key, holder: holder, token: token, ttl: ttl, metadata: metadata)), true)
        }
        if changed { signals.notify(key) }
        return result
    }

    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        let now = clock.now()
        let (renewed, changed) = try state.withLock { state throws(BatonError) -> (Lease, Bool) in
            try Self.checkOpen(state)
            guard var term = state.terms[lease.key], term.expiresAt > now, term.holder == lease.holder,
                term.token == lease.token
            else {
                throw .lost(key: lease.key)
            }
            let changed = term.metadata != lease.metadata
            term.ttl = ttl
            term.expiresAt = now + ttl
            term.metadata = lease.metadata
            state.terms[lease.key] = term
            var renewed = lease
            renewed.ttl = ttl
            return (renewed, changed)
        }
        if changed { signals.notify(lease.key) }
        return renewed
    }

    public func release(_ lease: Lease) async throws {
        let released = try state.withLock { state throws(BatonError) -> Bool in
            try Self.checkOpen(state)
            guard let term = state.terms[lease.key], term.holder == lease.holder, term.token == lease.token else {
                return false
            }
            state.terms[lease.key] = nil
            return true
        }
        if released { signals.notify(lease.key) }
    }

    public func current(key: String) async throws -> LeaderInfo? {
        let now = clock.now()
        return try state.withLock { state throws(BatonError) -> LeaderInfo? in
            try Self.checkOpen(state)
            guard let term = state.terms[key], term.expiresAt > now else { return nil }
            return Self.info(term, now: now)
        }
    }

    /// The live terms whose key starts with `prefix`, sorted by key, at most `limit`.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        let now = clock.now()
        let held = try state.withLock { state throws(BatonError) -> [HeldLease] in
            try Self.checkOpen(state)
            return state.terms.compactMap { key, term in
                guard term.expiresAt > now, ListingLimits.key(key, hasPrefix: prefix) else { return nil }
                return HeldLease(key: key, leader: Self.info(term, now: now))
            }
        }
        return Array(held.sorted { ListingLimits.precedes($0.key, $1.key) }.prefix(limit))
    }

    public func changes(key: String) throws -> LeaderChanges {
        try LeaderChanges.observing { try observe(key: key, $0) }
    }

    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        LeaderChangeFeed.observe(
            clock: clock,
            pollInterval: pollInterval,
            signals: signals.subscribe(key),
            read: { [self] in try await current(key: key) },
            observer: observer
        )
    }

    public func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult
    {
        let now = clock.now()
        return try state.withLock { state throws(BatonError) -> ClaimResult in
            try Self.checkOpen(state)
            let id = RoundKey(system: system, round: round)
            let existing = state.rounds[id].flatMap { $0.expiresAt > now ? $0.record : nil }
            let (result, record) = RoundRules.claim(existing, candidate: candidate)
            if existing == nil || record != existing {
                state.rounds[id] = StoredRound(record: record, expiresAt: now + retention)
            }
            Self.sweep(&state, now: now)
            return result
        }
    }

    public func winner(system: String, round: String) async throws -> String? {
        try roundRecord(system: system, round: round)?.winner
    }

    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        let now = clock.now()
        try state.withLock { state throws(BatonError) in
            try Self.checkOpen(state)
            let id = RoundKey(system: system, round: round)
            let stored = state.rounds[id].flatMap { $0.expiresAt > now ? $0 : nil }
            let record = try RoundRules.complete(stored?.record, by: completer, system: system, round: round).get()
            state.rounds[id] = StoredRound(record: record, expiresAt: stored?.expiresAt ?? now + retention)
        }
    }

    public func completion(system: String, round: String) async throws -> String? {
        try roundRecord(system: system, round: round)?.completedBy
    }

    /// The kept rounds of `system`, the greatest name first, at most `limit`.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        let now = clock.now()
        let rounds = try state.withLock { state throws(BatonError) -> [RoundSummary] in
            try Self.checkOpen(state)
            return state.rounds.compactMap { id, stored in
                guard id.system == system, stored.expiresAt > now else { return nil }
                return RoundSummary(round: id.round, record: stored.record)
            }
        }
        return Array(rounds.sorted { ListingLimits.precedes($1.round, $0.round) }.prefix(limit))
    }

    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        let now = clock.now()
        try state.withLock { state throws(BatonError) in
            try Self.checkOpen(state)
            state.presence[group, default: [:]][member] = now + ttl
        }
    }

    public func leave(group: String, member: String) async throws {
        try state.withLock { state throws(BatonError) in
            try Self.checkOpen(state)
            state.presence[group]?[member] = nil
        }
    }

    public func members(group: String) async throws -> [String] {
        let now = clock.now()
        return try state.withLock { state throws(BatonError) -> [String] in
            try Self.checkOpen(state)
            let live = (state.presence[group] ?? [:]).filter { $0.value > now }
            state.presence[group] = live.isEmpty ? nil : live
            return live.keys.sorted()
        }
    }

    /// Waits until cancelled or shut down gracefully, then closes the store: later calls throw
    /// ``BatonError/Code/storeUnavailable``. The store answers without it, so running it is optional.
    public func run() async throws {
        try? await gracefulShutdown()
        state.withLock { $0.closed = true }
        signals.finishAll()
    }

    // MARK: Helpers

    private func roundRecord(system: String, round: String) throws -> RoundRecord? {
        let now = clock.now()
        return try state.withLock { state throws(BatonError) -> RoundRecord? in
            try Self.checkOpen(state)
            return state.rounds[RoundKey(system: system, round: round)].flatMap { $0.expiresAt > now ? $0.record : nil }
        }
    }

    private static func info(_ term: Term, now: Duration) -> LeaderInfo {
        LeaderInfo(
            holder: term.holder,
            token: term.token,
            metadata: term.metadata,
            ttl: term.ttl,
            remaining: term.expiresAt - now
        )
    }

    private static func checkOpen(_ state: State) throws(BatonError) {
        if state.closed { throw .storeUnavailable("the memory store is closed") }
    }

    /// Drops expired round records; called from claims, so the work is spread over writes.
    private static func sweep(_ state: inout State, now: Duration) {
        guard state.rounds.count > 64 else { return }
        state.rounds = state.rounds.filter { $0.value.expiresAt > now }
    }
}
