/// A store that Baton elects over: leases for continuous leadership, rounds for one-shot elections, and
/// presence for "who is taking part".
///
/// ## The contract every store keeps
///
/// - **Atomic on the store.** Every operation is one compare-and-set, transaction or server-side script. No
///   operation reads and then writes from the client, so two callers can never both succeed where only one may.
/// - **Validation first.** Every name (key, holder, system, round, candidate, group, member) is 1–256 bytes of
///   UTF-8 with no control characters, metadata is at most 4 KiB, durations are positive; anything else throws
///   ``BatonError/Code/invalidArgument`` before any I/O (use ``BatonValidation``).
/// - **Fencing tokens.** Every new term of a key gets a token strictly greater than every token the key had
///   before, also after the key was released or expired. Renewals keep the token.
/// - **Expiry by one clock.** A store judges expiry by a clock of its own (the server's, or one host's
///   monotonic clock), never by comparing wall clocks of different hosts. A term granted by a request sent at
///   local time `t0` with time to live `ttl` never expires before `t0 + ttl`. A store that can start a term
///   without a request (etcd, for a term handed over on release) answers with a lease whose ``Lease/ttl`` is
///   shorter than asked: the time the term is sure to last, counted from the call.
/// - **Errors.** "Held by someone else" is an answer (``AcquireResult/held(by:)``, ``BatonError/Code/lost``);
///   "the store failed" is ``BatonError/Code/storeUnavailable`` or ``BatonError/Code/timeout``, after which the
///   outcome is unknown and the call may be retried with the same arguments.
/// - **Cancellation.** Cancelling the calling task abandons the wait for an answer and throws
///   `CancellationError` or a ``BatonError``; the store may or may not have applied the operation (as with a
///   timeout), so callers retry or let the ttl run out.
///
/// `BatonTestKit`'s conformance suite checks all of this for any store.
public protocol LeaseStore: Sendable {
    // MARK: Leases

    /// Takes `key` for `holder` if it is free or expired, or renews it if `holder` already holds it.
    ///
    /// A free or expired key starts a new term with a new, larger fencing token; the holder's own live term
    /// keeps its token and gets a new time to live and the given metadata.
    /// - Returns: ``AcquireResult/acquired(_:)`` with the lease, or ``AcquireResult/held(by:)`` with the leader.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`, `unauthorized`.
    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult

    /// Extends the term of `lease` to `ttl` from now and publishes `lease.metadata`.
    ///
    /// Atomic: succeeds only while the key is still in this term (same holder and token).
    /// - Returns: the renewed lease (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `invalidArgument`, `storeUnavailable`, `timeout`.
    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease

    /// Ends the term of `lease` at once, so the next candidate can take the key without waiting for expiry.
    ///
    /// A compare-and-delete: a no-op if the key is no longer in this term. The key's token history is kept, so
    /// the next term still gets a larger token.
    /// - Throws: ``BatonError`` `invalidArgument`, `storeUnavailable`, `timeout`.
    func release(_ lease: Lease) async throws

    /// The current leader of `key`, or nil if the key is free or expired.
    func current(key: String) async throws -> LeaderInfo?

    /// Leader observations for `key`: the current leader first, then each change (a new term, a release, an
    /// expiry, new metadata). Consecutive equal observations are not repeated; a burst of changes may be
    /// coalesced to the latest.
    ///
    /// Stores with push deliver changes as they happen; others poll behind the same API. The sequence ends with
    /// an error when the store fails; subscribe again to go on. It ends when the consuming task is cancelled.
    /// - Throws: ``BatonError`` `invalidArgument` at once for a malformed key.
    func changes(key: String) throws -> LeaderChanges

    // MARK: Rounds

    /// Claims one round of `system` for `candidate`. The first claim wins; the winner claiming again wins again
    /// (so a retry after a timeout never turns the winner into a loser).
    ///
    /// The record is kept for `retention`, after which the round may be claimed afresh.
    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult

    /// The winner of a round, or nil if it has not been claimed (or its record expired).
    func winner(system: String, round: String) async throws -> String?

    /// Records the completion of a round under the rules of ``RoundRules/complete(_:by:system:round:)``.
    ///
    /// - Throws: ``BatonError`` `notWinner` (a named candidate that did not win), `alreadyCompleted` (another
    ///   identity completed first), `invalidArgument`, `storeUnavailable`, `timeout`.
    func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws

    /// The identity whose completion of the round is recorded, or nil.
    func completion(system: String, round: String) async throws -> String?

    // MARK: Presence

    /// Marks `member` of `group` alive for `ttl`.
    func heartbeat(group: String, member: String, ttl: Duration) async throws

    /// Removes `member` from `group` at once.
    func leave(group: String, member: String) async throws

    /// The members of `group` whose last heartbeat has not expired, sorted.
    func members(group: String) async throws -> [String]

    // MARK: Lifecycle

    /// Closes connections and files. Further calls fail with ``BatonError/Code/storeUnavailable``.
    func close() async throws
}

extension LeaseStore {
    /// Takes `key` for `holder` with no metadata.
    public func acquire(key: String, holder: String, ttl: Duration) async throws -> AcquireResult {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: nil)
    }

    /// Claims a round with the default retention of seven days.
    public func claim(system: String, round: String, candidate: String) async throws -> ClaimResult {
        try await claim(system: system, round: round, candidate: candidate, retention: RoundElection.defaultRetention)
    }

    /// Completes a round, keeping the record for the default retention of seven days.
    public func complete(system: String, round: String, by completer: Completer) async throws {
        try await complete(system: system, round: round, by: completer, retention: RoundElection.defaultRetention)
    }
}
