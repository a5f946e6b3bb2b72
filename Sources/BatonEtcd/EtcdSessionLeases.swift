@_spi(BatonStoreKit) import Baton
import Synchronization

/// The leases an ``EtcdLeaseStore`` shares among the terms it starts: one per ttl (in etcd's whole seconds), the
/// way etcd's own `concurrency.Session` shares one lease among every key of a client.
///
/// A term that starts at once (no candidate before it) puts its keys on the session lease of its ttl instead of a
/// lease of its own: 10,000 leaders in one process then cost one lease and one keep-alive message per round trip
/// (``EtcdKeepAliveStream`` coalesces them), not 10,000 of each. Each renew still sends a keep-alive of the
/// session lease after it was asked (so the term lasts its ttl from the renew), and the store ends a term whose
/// holder stopped renewing itself (``EtcdCampaignMachine/expiredTerms(now:)``): the session lease lives while any
/// of its terms is renewed. When the process dies, etcd expires the lease, and every term on it, within the ttl.
///
/// A lease is granted when a term first needs one of its ttl (one grant at a time per ttl: callers meanwhile wait
/// for it), and forgotten when etcd no longer has it (a keep-alive answered 0, or a put refused it); the next
/// term of that ttl gets a new one.
final class EtcdSessionLeases: Sendable {
    private typealias Waiter = CheckedContinuation<Int64?, any Error>

    private struct State {
        var leases: [Int64: Int64] = [:]
        var granting: [Int64: [Int: Waiter]] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    /// The session lease of `ttlSeconds`, granted with `grant` if there is none yet. Callers that ask while a
    /// grant of that ttl is under way wait for it (and get its error if it fails), or until their request is
    /// aborted (``Baton/RequestAbort``).
    func lease(ttlSeconds: Int64, grant: () async throws -> Int64) async throws -> Int64 {
        enum Step {
            case have(Int64)
            case grant
            case wait
        }
        while true {
            let step = state.withLock { state -> Step in
                if let lease = state.leases[ttlSeconds] { return .have(lease) }
                if state.granting[ttlSeconds] != nil { return .wait }
                state.granting[ttlSeconds] = [:]
                return .grant
            }
            switch step {
            case .have(let lease):
                return lease
            case .grant:
                let result: Result<Int64, any Error>
                do {
                    result = .success(try await grant())
                } catch {
                    result = .failure(error)
                }
                let waiters = state.withLock { state in
                    if case .success(let lease) = result { state.leases[ttlSeconds] = lease }
                    return state.granting.removeValue(forKey: ttlSeconds) ?? [:]
                }
                for waiter in waiters.values { waiter.resume(with: result.map { $0 }) }
                return try result.get()
            case .wait:
                let abort = RequestAbort.current
                let id = state.withLock { state in
                    state.nextWaiter += 1
                    return state.nextWaiter
                }
                let granted: Int64? = try await RequestAbort.whileWaiting {
                    try await withCheckedThrowingContinuation { (waiter: Waiter) in
                        let now = state.withLock { state -> Result<Int64?, any Error>? in
                            if let reason = abort?.reason { return .failure(reason) }
                            if let lease = state.leases[ttlSeconds] { return .success(lease) }
                            guard state.granting[ttlSeconds] != nil else { return .success(nil) }
                            state.granting[ttlSeconds]?[id] = waiter
                            return nil
                        }
                        if let now { waiter.resume(with: now) }
                    }
                } onAbort: { reason in
                    let waiter = self.state.withLock { $0.granting[ttlSeconds]?.removeValue(forKey: id) }
                    waiter?.resume(throwing: reason)
                }
                // Nil: the grant ended between the two looks; look again.
                if let granted { return granted }
            }
        }
    }

    /// etcd no longer has `lease`: the next term of its ttl gets a new one.
    func lost(_ lease: Int64) {
        state.withLock { state in
            if let entry = state.leases.first(where: { $0.value == lease }) { state.leases[entry.key] = nil }
        }
    }

    /// Whether `lease` is one of this store's session leases.
    func isSession(_ lease: Int64) -> Bool {
        state.withLock { $0.leases.values.contains(lease) }
    }
}
