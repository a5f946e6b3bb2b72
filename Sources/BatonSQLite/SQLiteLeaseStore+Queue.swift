@_spi(BatonStoreKit) import Baton
import SQLiteNIO

/// Acquires in the order candidates asked: the queue of waiting candidates (`baton_waiters`), a free key that goes
/// to the first of them, and the change feed's read that hands it on after an expiry.
extension SQLiteLeaseStore {
    /// True: a candidate refused by a waiting acquire keeps a place in the key's queue for one and a half ttl, and
    /// a free key goes to the first candidate in line.
    public var queuesWaiters: Bool { true }

    /// One: a place lasts one and a half ttl after the candidate's last waiting acquire, so one ask per ttl
    /// keeps it.
    public var queueAsksPerTTL: Int { 1 }

    /// Takes `key` for `holder` if it is free or expired and nobody waits ahead of it, or renews it if `holder`
    /// holds it (same token, new ttl and metadata). The same as ``acquire(key:holder:ttl:metadata:waiting:)``
    /// with `waiting` false.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: false)
    }

    /// Takes or renews `key` for `holder`, in the order candidates asked.
    ///
    /// - The holder's own live term: renewed (same token, new ttl and metadata).
    /// - Held by another: refused with that leader; a waiting acquire joins the key's queue (or keeps its place
    ///   there for another `ttl`).
    /// - Free or expired, with a live candidate waiting ahead of `holder`: that candidate gets the key (its term
    ///   starts now, with the ttl and metadata of its last waiting acquire; its own next acquire renews it) and
    ///   the answer names it; a waiting acquire joins the queue behind it.
    /// - Free or expired, and `holder` first in line or nobody waiting: a new term, with the key's last token plus
    ///   one.
    ///
    /// One `BEGIN IMMEDIATE` transaction. A new term, a release or new metadata wakes the subscribers of
    /// ``changes(key:)`` in every process.
    /// - Returns: ``AcquireResult/acquired(_:)``, or ``AcquireResult/held(by:)`` with the leader and its time left.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`; `CancellationError` if cancelled while waiting for
    ///   its turn in this instance (nothing was done then).
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        let term = Duration.nanoseconds(ttl.batonNanoseconds)
        if waiting, let handed = handedTerms.handedTermFromRead(key: key, holder: holder, ttl: term, metadata: metadata)
        {
            return .acquired(handed)
        }
        let sent = timer.now()
        let (result, changed) = try await transaction("acquire of \(key)", atomic: true) { db, now in
            let row = try await LeaseRow.read(db, key: key)
            if let row, row.isLive(epoch: db.epoch, now: now), let current = row.holder {
                if current != holder {
                    if waiting {
                        try await Self.join(db, key: key, holder: holder, ttl: ttl, metadata: metadata, now: now)
                    }
                    return (AcquireResult.held(by: row.info(now: now)), false)
                }
                try await db.execute(
                    """
                    UPDATE baton_leases SET metadata = ?, ttl_ns = ?, expires_ns = ?, updated_ms = ?
                    WHERE key = ?
                    """,
                    [
                        .optionalText(metadata), .int64(ttl.batonNanoseconds), .int64(now + ttl.batonNanoseconds),
                        .int64(HostClock.wallMilliseconds()), .text(key),
                    ]
                )
                let lease = Lease(key: key, holder: holder, token: row.token, ttl: ttl, metadata: metadata)
                return (.acquired(lease), row.metadata != metadata)
            }
            let lastToken = row?.token ?? 0
            let head = try await Self.head(db, key: key, now: now)
            if let head, head.holder != holder {
                if waiting {
                    try await Self.join(db, key: key, holder: holder, ttl: ttl, metadata: metadata, now: now)
                }
                let leader = try await Self.startTerm(db, key: key, head, lastToken: lastToken, now: now)
                return (.held(by: leader), true)
            }
            let term = Waiter(holder: holder, metadata: metadata, ttl: ttl.batonNanoseconds)
            // Without a live queue, `holder` has no place to leave (a place whose time ran out is dropped by the
            // next join or sweep).
            let leader = try await Self.startTerm(
                db, key: key, term, lastToken: lastToken, now: now, dequeue: head != nil)
            return (.acquired(Lease(key: key, holder: holder, token: leader.token, ttl: ttl, metadata: metadata)), true)
        }
        switch result {
        case .acquired(let lease):
            handedTerms.stopped(key: key, holder: holder)
            handedTerms.saw(key: key, token: lease.token)
        case .held(let leader) where waiting:
            handedTerms.refused(key: key, holder: holder, ttl: term, metadata: metadata, sentAt: sent, leader: leader)
        case .held(let leader):
            handedTerms.saw(key: key, token: leader.token)
        }
        if changed { publishChange(of: key) }
        return result
    }

    /// A change feed's read of `key`: its leader, after handing a free key to the first live candidate in its
    /// queue (a term that expired while candidates wait). A read, and a write transaction only to hand on.
    func look(key: String) async throws -> LeaderInfo? {
        // Times the reads below tell are counted from before each: a term read expires no earlier than this.
        let readStarted = timer.now()
        let (leader, waiting) = try await withSession("read of \(key)") { [now] db in
            let row = try await LeaseRow.read(db, key: key)
            let now = now()
            if let row, row.isLive(epoch: db.epoch, now: now) { return (Optional(row.info(now: now)), false) }
            let live = try await db.rows(
                "SELECT 1 FROM baton_waiters WHERE key = ? AND boot_id = ? AND expires_ns > ? LIMIT 1",
                [.text(key), .text(db.epoch), .int64(now)]
            )
            return (nil, !live.isEmpty)
        }
        guard leader == nil, waiting else {
            handedTerms.read(key: key, leader: leader, expiresAt: readStarted + (leader?.remaining ?? .zero))
            return leader
        }
        let handOnStarted = timer.now()
        let (handedOn, changed) = try await transaction("hand-over of \(key)", atomic: true) { db, now in
            let row = try await LeaseRow.read(db, key: key)
            if let row, row.isLive(epoch: db.epoch, now: now) { return (Optional(row.info(now: now)), false) }
            let leader = try await Self.handToHead(db, key: key, lastToken: row?.token ?? 0, now: now)
            return (leader, leader != nil)
        }
        handedTerms.read(key: key, leader: handedOn, expiresAt: handOnStarted + (handedOn?.remaining ?? .zero))
        if changed { publishChange(of: key) }
        return handedOn
    }

    /// A waiting candidate: what its term will be.
    struct Waiter: Sendable {
        var holder: String
        var metadata: String?
        /// Nanoseconds.
        var ttl: Int64
    }

    /// Starts the term of the first live candidate in `key`'s queue, if any, after a term that ended with
    /// `lastToken`; returns it.
    @discardableResult
    static func handToHead(_ db: SQLiteSession, key: String, lastToken: Int64, now: Int64) async throws
        -> LeaderInfo?
    {
        guard let head = try await head(db, key: key, now: now) else { return nil }
        return try await startTerm(db, key: key, head, lastToken: lastToken, now: now)
    }

    /// The first live candidate in `key`'s queue. One `SELECT`: places whose time ran out are skipped here and
    /// dropped by the next ``join(_:key:holder:ttl:metadata:now:)`` on the key or by the store's sweep.
    static func head(_ db: SQLiteSession, key: String, now: Int64) async throws -> Waiter? {
        let rows = try await db.rows(
            """
            SELECT holder, metadata, ttl_ns FROM baton_waiters
            WHERE key = ? AND boot_id = ? AND expires_ns > ? ORDER BY arrival LIMIT 1
            """,
            [.text(key), .text(db.epoch), .int64(now)]
        )
        guard let row = rows.first, let holder = row.column("holder")?.string,
            let ttl = row.column("ttl_ns")?.integer
        else { return nil }
        return Waiter(holder: holder, metadata: row.column("metadata")?.string, ttl: Int64(ttl))
    }

    /// Puts `holder` at the end of `key`'s queue, or keeps its place there, until `ttl` from `now`.
    static func join(
        _ db: SQLiteSession, key: String, holder: String, ttl: Duration, metadata: String?, now: Int64
    ) async throws {
        // A candidate whose time ran out has left: if it asks again, it goes to the end.
        try await db.execute(
            "DELETE FROM baton_waiters WHERE key = ? AND (boot_id <> ? OR expires_ns <= ?)",
            [.text(key), .text(db.epoch), .int64(now)]
        )
        try await db.execute(
            """
            INSERT INTO baton_waiters (key, holder, arrival, metadata, ttl_ns, expires_ns, boot_id)
            VALUES (?, ?, (SELECT COALESCE(MAX(arrival), 0) + 1 FROM baton_waiters WHERE key = ?), ?, ?, ?, ?)
            ON CONFLICT (key, holder) DO UPDATE SET metadata = excluded.metadata, ttl_ns = excluded.ttl_ns,
                expires_ns = excluded.expires_ns, boot_id = excluded.boot_id
            """,
            [
                .text(key), .text(holder), .text(key), .optionalText(metadata), .int64(ttl.batonNanoseconds),
                .int64(now + ttl.batonNanoseconds / 2 * 3), .text(db.epoch),
            ]
        )
    }

    /// Starts `candidate`'s term of `key` (token `lastToken + 1`) and, with `dequeue`, takes it out of the queue;
    /// returns the leader it is.
    static func startTerm(
        _ db: SQLiteSession, key: String, _ candidate: Waiter, lastToken: Int64, now: Int64, dequeue: Bool = true
    ) async throws -> LeaderInfo {
        let token = lastToken + 1
        try await db.execute(
            """
            INSERT INTO baton_leases (key, token, holder, metadata, ttl_ns, expires_ns, boot_id, updated_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET token = excluded.token, holder = excluded.holder,
                metadata = excluded.metadata, ttl_ns = excluded.ttl_ns, expires_ns = excluded.expires_ns,
                boot_id = excluded.boot_id, updated_ms = excluded.updated_ms
            """,
            [
                .text(key), .int64(token), .text(candidate.holder), .optionalText(candidate.metadata),
                .int64(candidate.ttl), .int64(now + candidate.ttl), .text(db.epoch),
                .int64(HostClock.wallMilliseconds()),
            ]
        )
        if dequeue {
            try await db.execute(
                "DELETE FROM baton_waiters WHERE key = ? AND holder = ?", [.text(key), .text(candidate.holder)])
        }
        return LeaderInfo(
            holder: candidate.holder,
            token: token,
            metadata: candidate.metadata,
            ttl: .nanoseconds(candidate.ttl),
            remaining: .nanoseconds(candidate.ttl)
        )
    }
}
