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
    private struct State {
        var highest: [String: FencingToken] = [:]
        /// Resources with an admission running, and the admissions waiting for each, in arrival order.
        var busy: [String: [CheckedContinuation<Void, Never>]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The highest token admitted for `resource`, or nil if none was.
    public func highest(for resource: String) -> FencingToken? {
        state.withLock { $0.highest[resource] }
    }

    /// How many admissions of `resource` wait for their turn.
    package func waitingCount(for resource: String) -> Int {
        state.withLock { $0.busy[resource]?.count ?? 0 }
    }

    /// Admits `token` for `resource` (raising the highest) or refuses it.
    /// - Throws: ``StaleFencingToken`` if a higher token was admitted for `resource`; nothing changes then.
    public func admit(_ token: FencingToken, for resource: String) throws(StaleFencingToken) {
        try state.withLock { state throws(StaleFencingToken) in
            try Self.admit(token, for: resource, in: &state)
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
        await enter(resource)
        defer { leave(resource) }
        try admit(token, for: resource)
        return try await write()
    }

    private static func admit(
        _ token: FencingToken,
        for resource: String,
        in state: inout State
    ) throws(StaleFencingToken) {
        if let highest = state.highest[resource], token < highest {
            throw StaleFencingToken(resource: resource, token: token, highest: highest)
        }
        state.highest[resource] = token
    }

    /// Waits until no other admission of `resource` runs, and marks one running.
    private func enter(_ resource: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = state.withLock { state in
                guard state.busy[resource] != nil else {
                    state.busy[resource] = []
                    return true
                }
                state.busy[resource]!.append(continuation)
                return false
            }
            if free { continuation.resume() }
        }
    }

    /// Ends an admission of `resource`: the next one waiting runs.
    private func leave(_ resource: String) {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var waiting = state.busy[resource], !waiting.isEmpty else {
                state.busy[resource] = nil
                return nil
            }
            let next = waiting.removeFirst()
            state.busy[resource] = waiting
            return next
        }
        next?.resume()
    }
}
