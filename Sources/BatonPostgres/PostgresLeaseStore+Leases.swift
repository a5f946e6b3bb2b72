@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO
import Synchronization

extension PostgresLeaseStore {
    // MARK: Leases

    /// Takes `key` for `holder` if it is free or expired and nobody waits ahead of it, or renews it if `holder`
    /// holds it. The same as ``acquire(key:holder:ttl:metadata:waiting:)`` with `waiting` false.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: false)
    }

    /// True: a candidate refused by a waiting acquire keeps a place in the key's queue (`baton_waiters`) for its
    /// ttl, and a free key goes to the first candidate in line.
    public var queuesWaiters: Bool { true }

    /// One: a place lasts one and a half ttl after the candidate's last waiting acquire, so one ask per ttl
    /// keeps it.
    public var queueAsksPerTTL: Int { 1 }

    /// Takes or renews `key` for `holder`, in the order candidates asked.
    ///
    /// - The holder's own live term: renewed (same token, new ttl and metadata).
    /// - Held by another: refused with that leader; a waiting acquire joins the key's queue (or keeps its place
    ///   there for another `ttl`).
    /// - Free or expired, with a live candidate waiting ahead of `holder`: that candidate gets the key (its term
    ///   starts now, with the ttl and metadata of its last waiting acquire; its own next acquire renews it) and the
    ///   answer names it; a waiting acquire joins the queue behind it.
    /// - Free or expired, and `holder` first in line or nobody waiting: a new term, with the key's last token plus
    ///   one.
    ///
    /// One statement (the function `baton_acquire`), under the key's row lock, judged by the server's clock. A new
    /// term or new metadata notifies every store's ``changes(key:)``. A candidate that this store was notified
    /// has been handed the key is confirmed by a read instead, with no write: its lease's ttl is then the time the
    /// server read as left (more than half of `ttl`), and its next renew extends it.
    /// - Returns: ``AcquireResult/acquired(_:)``, or ``AcquireResult/held(by:)`` with the leader and its time left.
    /// - Throws: ``BatonError`` `invalidArgument` for metadata with a NUL character (PostgreSQL `text` cannot
    ///   hold it); `storeUnavailable`, `timeout`, `unauthorized`.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        try Self.validate(metadata: metadata)
        let term = Duration.milliseconds(Self.milliseconds(ttl))
        if waiting,
            let handed = handedTerms.handedTerm(
                key: key, holder: holder, ttl: term, metadata: metadata, pushed: states.latest(key)?.state)
        {
            readyReleaseLater()
            return .acquired(handed)
        }
        if let handed = try await confirmHandedOverTerm(key: key, holder: holder, ttl: ttl, metadata: metadata) {
            handedTerms.stopped(key: key, holder: holder)
            readyReleaseLater()
            return .acquired(handed)
        }
        let query = schema.queuedAcquire(
            key: key, holder: holder, ttlMilliseconds: Self.milliseconds(ttl), metadata: metadata, waiting: waiting)
        let sent = clock.now()
        let row = try await perform("acquire of \(key)") { connection, logger in
            try await Self.leaseRows(connection.query(query, logger: logger)).first
        }
        guard let row else {
            throw BatonError.storeUnavailable("acquire of \(key) on \(redactedURL) returned no row")
        }
        if row.holder == holder {
            handedTerms.stopped(key: key, holder: holder)
            handedTerms.saw(key: key, token: row.token)
            readyReleaseLater()
            return .acquired(Lease(key: key, holder: holder, token: row.token, ttl: ttl, metadata: row.metadata))
        }
        if waiting {
            handedTerms.refused(
                key: key, holder: holder, ttl: term, metadata: metadata, sentAt: sent, leader: row.info)
        } else {
            handedTerms.saw(key: key, token: row.token)
        }
        return .held(by: row.info)
    }

    /// The term a release (or an expiry's hand-on) started for `holder`, as its notification told this store,
    /// confirmed by a read instead of the acquire's write and its commit's wait for the disk: the lease is
    /// promised for the time the server read as left (from before the read, so never overstated), when that is
    /// more than half of `ttl`. Nil, and the acquire writes, when no such notification came, the read shows
    /// another term or other metadata, or too little time is left.
    private func confirmHandedOverTerm(key: String, holder: String, ttl: Duration, metadata: String?) async throws
        -> Lease?
    {
        guard let pushed = states.latest(key)?.state?.leader, pushed.holder == holder, pushed.metadata == metadata,
            pushed.ttl == .milliseconds(Self.milliseconds(ttl))
        else { return nil }
        guard let row = try await current(key: key, timeout: nil), row.holder == holder, row.token == pushed.token,
            row.metadata == metadata, let left = row.remaining, left > ttl / 2
        else { return nil }
        return Lease(key: key, holder: holder, token: row.token, ttl: min(ttl, left), metadata: metadata)
    }

    /// Extends the term of `lease` to `ttl` from now (by the server's clock) and publishes `lease.metadata`, if
    /// the key is still in that term (same holder and token, not expired).
    ///
    /// One `UPDATE` statement, shared with the renews of this store that arrive meanwhile (see
    /// ``Baton/RequestBatcher``): a process with thousands of leases sends a few statements, not one per lease. New
    /// metadata notifies every store's ``changes(key:)``.
    /// - Returns: the lease with the new ttl (same token).
    /// - Throws: ``BatonError`` `lost` if the term is over; `invalidArgument` for metadata with a NUL character;
    ///   `storeUnavailable`, `timeout`.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try Self.validate(metadata: lease.metadata)
        handedTerms.saw(key: lease.key, token: lease.token)
        let renewal = PostgresRenewal(
            key: lease.key,
            holder: lease.holder,
            token: lease.token,
            ttlMilliseconds: Self.milliseconds(ttl),
            metadata: lease.metadata
        )
        let renewed = try await renewals.submit(renewal) { [self] batch in
            if batch.count == 1 {
                let statement = PostgresPrepared.Renew(renewal: batch[0])
                return try await perform("renew of \(batch[0].key)") { [schema] connection, logger in
                    Set(try await schema.execute(statement, on: connection, logger: logger))
                }
            }
            let query = schema.renew(batch)
            return try await perform("renew of \(batch.count) leases") { connection, logger in
                var keys = Set<String>()
                for try await key in try await connection.query(query, logger: logger).decode(String.self) {
                    keys.insert(key)
                }
                return keys
            }
        }
        guard renewed else { throw BatonError.lost(key: lease.key) }
        var result = lease
        result.ttl = ttl
        return result
    }

    /// Ends the term of `lease` at once if the key is still in that term (same holder and token); a no-op
    /// otherwise. The row keeps its token, so the next term gets a larger one; if candidates wait in the key's
    /// queue, the first of them gets the key in the same statement.
    ///
    /// One statement (the function `baton_release`). A release notifies every store's ``changes(key:)``.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func release(_ lease: Lease) async throws {
        handedTerms.saw(key: lease.key, token: lease.token)
        let query = schema.queuedRelease(key: lease.key, holder: lease.holder, token: lease.token)
        try await perform("release of \(lease.key)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
    }

    /// Takes `holder` out of `key`'s queue at once: one `DELETE` of its place (a term it holds is left alone).
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leaveQueue(key: String, holder: String) async throws {
        handedTerms.stopped(key: key, holder: holder)
        let query = schema.leaveQueue(key: key, holder: holder)
        try await perform("leaving the queue of \(key)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
    }

    /// The current leader of `key` with its time left by the server's clock, or nil if the key is free or
    /// expired.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func current(key: String) async throws -> LeaderInfo? {
        try await current(key: key, timeout: nil)
    }

    /// ``current(key:)``, within `timeout` if one is given (the connection is closed if it passes); with
    /// `handingOn`, a free key is handed to the first live candidate in its queue first (a change feed's read).
    private func current(key: String, timeout: Duration?, handingOn: Bool = false) async throws -> LeaderInfo? {
        let query = handingOn ? schema.look(key: key) : schema.current(key: key)
        return try await perform("read of \(key)", timeout: timeout) { connection, logger in
            try await Self.leaseRows(connection.query(query, logger: logger)).first?.info
        }
    }

    /// Leader observations for `key`, pushed by `LISTEN`/`NOTIFY` (see ``PostgresLeaseStore``): the current
    /// leader first, then each change. Asks ``run()`` to start this store's listening connection if it has not
    /// yet.
    ///
    /// The sequence ends with the store's error when a read fails (the database is down: subscribe again
    /// later, or the store stopped), and ends when the consuming task is cancelled.
    /// - Throws: ``BatonError`` `storeUnavailable` if the store has stopped.
    public func changes(key: String) throws -> LeaderChanges {
        try LeaderChanges.observing { try observe(key: key, $0) }
    }

    /// The push form of ``changes(key:)``.
    /// - Throws: ``BatonError`` `storeUnavailable` if the store has stopped.
    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        if gate.isEnded { throw stopped("changes of \(key)") }
        listenRequests.yield()
        // One feed per key, whatever the number of electors following it in this process.
        return try observations.observe(key, observer) { [self] observer in
            let reader = PushedStateFeedReader(key: key, states: states) { [self] in
                // A feed's read that takes longer than a check of the listener's connection would is taken for a
                // connection that died silently (a pool connection leased before its own check found it dead): the
                // connection is closed and the feed fails, so its elector polls meanwhile and subscribes again,
                // instead of waiting for the request deadline.
                feedLooks.add(1, ordering: .relaxed)
                let leader = try await current(key: key, timeout: feedReadTimeout, handingOn: true)
                // A free key's last token is not read: any later notification is news.
                return (leader, leader.map { FeedVersion(token: $0.token, free: false) })
            }
            let read = { @Sendable () async throws -> LeaderInfo? in try await reader.read() }
            return LeaderChangeFeed.observe(
                clock: clock,
                pollInterval: configuration.changesPollInterval,
                signals: signals.subscribe(key),
                read: read,
                observer: observer
            )
        }
    }

    /// A row of `baton_leases` as the statements return it.
    private struct LeaseRow: Sendable {
        var token: Int64
        var holder: String?
        var metadata: String?
        var ttlMilliseconds: Int64?
        var remainingMicroseconds: Int64?

        var info: LeaderInfo {
            LeaderInfo(
                holder: holder ?? "",
                token: token,
                metadata: metadata,
                ttl: ttlMilliseconds.map { .milliseconds($0) },
                remaining: remainingMicroseconds.map { .microseconds($0) }
            )
        }
    }

    private static func leaseRows(_ rows: PostgresRowSequence) async throws -> [LeaseRow] {
        var result: [LeaseRow] = []
        for try await (token, holder, metadata, ttl, remaining) in rows.decode(
            (Int64, String?, String?, Int64?, Int64?).self
        ) {
            result.append(
                LeaseRow(
                    token: token,
                    holder: holder,
                    metadata: metadata,
                    ttlMilliseconds: ttl,
                    remainingMicroseconds: remaining
                )
            )
        }
        return result
    }
}

/// One renew that ``PostgresLeaseStore`` sends with others in one statement: the term, its new ttl and metadata.
struct PostgresRenewal: BatchedRequest {
    var key: String
    var holder: String
    var token: Int64
    var ttlMilliseconds: Int64
    var metadata: String?

    var batchKey: String { key }
}
