import Baton
import Synchronization

/// TEMPORARY stand-in for `LeaderElector.timeLeft` and `ElectorEvent.renewed`, which are coming to the library:
/// delete this file once they are merged. Wraps the store and times each successful acquire or renew from just
/// before it was sent, as the elector does (`t0 + min(lease.ttl, ttl) − margin`).
final class TermClockStandIn: LeaseStore {
    private let base: any LeaseStore
    private let ttl: Duration
    private let margin: Duration
    private let deadline = Mutex<(token: FencingToken, at: ContinuousClock.Instant)?>(nil)
    private let onRenewed = Mutex<(@Sendable (Lease) -> Void)?>(nil)

    init(_ base: any LeaseStore, ttl: Duration, margin: Duration) {
        self.base = base
        self.ttl = ttl
        self.margin = margin
    }

    /// Calls `handler` after each successful renew.
    func whenRenewed(_ handler: @escaping @Sendable (Lease) -> Void) { onRenewed.withLock { $0 = handler } }

    /// The time left until the deadline of the term of `lease` (nil: none).
    func timeLeft(_ lease: Lease?) -> Duration? {
        guard let lease, let deadline = deadline.withLock({ $0 }), deadline.token == lease.token else { return nil }
        return ContinuousClock.now.duration(to: deadline.at)
    }

    private func record(_ lease: Lease, sentAt: ContinuousClock.Instant) {
        let at = sentAt + min(lease.ttl, ttl) - margin
        deadline.withLock { current in
            if let current, current.token == lease.token, current.at >= at { return }
            current = (lease.token, at)
        }
    }

    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        let sentAt = ContinuousClock.now
        let result = try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata)
        if let lease = result.lease { record(lease, sentAt: sentAt) }
        return result
    }

    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        let sentAt = ContinuousClock.now
        let renewed = try await base.renew(lease, ttl: ttl)
        record(renewed, sentAt: sentAt)
        onRenewed.withLock { $0 }?(renewed)
        return renewed
    }

    func release(_ lease: Lease) async throws { try await base.release(lease) }
    func current(key: String) async throws -> LeaderInfo? { try await base.current(key: key) }
    func changes(key: String) throws -> LeaderChanges { try base.changes(key: key) }
    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult {
        try await base.claim(system: system, round: round, candidate: candidate, retention: retention)
    }
    func winner(system: String, round: String) async throws -> String? {
        try await base.winner(system: system, round: round)
    }
    func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await base.complete(system: system, round: round, by: completer, retention: retention)
    }
    func completion(system: String, round: String) async throws -> String? {
        try await base.completion(system: system, round: round)
    }
    func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try await base.heartbeat(group: group, member: member, ttl: ttl)
    }
    func leave(group: String, member: String) async throws { try await base.leave(group: group, member: member) }
    func members(group: String) async throws -> [String] { try await base.members(group: group) }
    func close() async throws { try await base.close() }
}
