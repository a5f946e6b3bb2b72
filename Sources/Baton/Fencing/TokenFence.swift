import Synchronization

/// The highest fencing token seen per resource, in memory: a guard for a resource that lives in one process (an
/// HTTP service's state, an in-process cache, a device driven by one server).
///
/// ```swift
/// let fence = TokenFence()
/// try await fence.withAdmission(request.token, for: "invoices") {
///     try await invoices.apply(request.change)     // no write of an older term can come after this one
/// }
/// ```
///
/// A token is admitted if it is at least the highest admitted for its resource (a term writes many times with one
/// token) and refused with ``StaleFencingToken`` otherwise; admitting raises the highest. Tokens of different
/// resources are never compared: use the key the token was issued for (a semaphore slot's or a shard's own key).
///
/// Check and write must be one step, or a late write of an old term can still land after a newer one was admitted:
/// ``withAdmission(_:for:_:)`` admits and runs the write while no other admission of the same resource runs (writes
/// to one resource are serialized in arrival order; different resources run concurrently). ``admit(_:for:)`` alone
/// fits a write that is itself instantaneous under the caller's own lock.
///
/// The memory is the process's: a resource served by several replicas needs a shared guard (for example
/// `PostgresFencing` in the database the replicas write to).
public final class TokenFence: Sendable {
    private let highest = Mutex<[String: FencingToken]>([:])
    private let turns = KeyedTurns()

    public init() {}

    /// The highest token admitted for `resource`, or nil if none was.
    public func highest(for resource: String) -> FencingToken? {
        highest.withLock { $0[resource] }
    }

    /// How many admissions of `resource` wait for their turn.
    package func waitingCount(for resource: String) -> Int {
        turns.waitingCount(for: resource)
    }

    /// Admits `token` for `resource` (raising the highest) or refuses it.
    /// - Throws: ``StaleFencingToken`` if a higher token was admitted for `resource`; nothing changes then.
    public func admit(_ token: FencingToken, for resource: String) throws(StaleFencingToken) {
        try highest.withLock { highest throws(StaleFencingToken) in
            if let seen = highest[resource], token < seen {
                throw StaleFencingToken(resource: resource, token: token, highest: seen)
            }
            highest[resource] = token
        }
    }

    /// Admits `token` for `resource` and runs `write` while no other admission of `resource` runs; waits for its
    /// turn behind the admissions of `resource` that came before it.
    /// - Throws: ``StaleFencingToken`` (without running `write`) if a higher token was admitted for `resource`
    ///   by the time its turn came; what `write` throws.
    public func withAdmission<T>(
        _ token: FencingToken,
        for resource: String,
        _ write: () async throws -> T
    ) async throws -> T {
        try await turns.run(resource) {
            try admit(token, for: resource)
            return try await write()
        }
    }
}
