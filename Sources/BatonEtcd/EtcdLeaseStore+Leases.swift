@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

extension EtcdLeaseStore {
    // MARK: Leases

    /// An acquire that does not wait: refused, it leaves no trace in etcd (see the type's documentation).
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: false)
    }

    /// True: etcd's election is a queue, whose waiting candidates keep their places while they ask.
    public var queuesWaiters: Bool { true }

    /// True: every wait of a request ends at the request's deadline (gRPC calls get it as their timeout) or
    /// when its caller is cancelled, so the front runs requests in their callers' tasks.
    public var honoursRequestAbort: Bool { true }

    /// Takes `key` for `holder` through etcd's queue (see the type's documentation), or renews the holder's
    /// term: joins the queue, or goes on with the holder's candidate as ``EtcdCampaignMachine`` decides. A waiting
    /// acquire that is refused keeps the holder's place in the queue for its ttl; one that does not wait leaves
    /// the queue before it answers.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        try await lifecycle.ready()
        let id = CampaignID(key: key, holder: holder)
        let now = clock.now()
        let start = state.withLock { state in
            state.machine.startAcquire(id, ttl: ttl, view: state.watchers[key]?.freshSnapshot, now: now)
        }
        switch start {
        case .join:
            return try await join(id, ttl: ttl, metadata: metadata, waiting: waiting)
        case .held(let leader, let campaign):
            // Its holder asks: one keep-alive keeps its place.
            let sent = clock.now()
            if try await keepAlive(campaign.lease) > 0 {
                state.withLock { $0.machine.keptAlive(id, lease: campaign.lease, sentAt: sent) }
                return .held(by: leader)
            }
            forget(id, lease: campaign.lease)
            return try await join(id, ttl: ttl, metadata: metadata, waiting: waiting)
        case .campaign(let campaign, let moveTo):
            if let result = try await go(id, campaign, moveTo: moveTo, ttl: ttl, metadata: metadata, waiting: waiting) {
                return result
            }
            forget(id, lease: campaign.lease)
            return try await join(id, ttl: ttl, metadata: metadata, waiting: waiting)
        }
    }

    /// Goes on with a candidate: moves it to a lease of `moveTo` seconds first if that is set, then attempts to
    /// lead. Nil when its keys are gone or moved by another instance. Only a `waiting` acquire takes a handed term
    /// from the watch, as on the other stores with a queue.
    func go(
        _ id: CampaignID, _ campaign: Campaign, moveTo: Int64?, ttl: Duration, metadata: String?, waiting: Bool
    ) async throws -> AcquireResult? {
        var campaign = campaign
        if let moveTo {
            guard let moved = try await move(id, campaign, ttlSeconds: moveTo) else { return nil }
            campaign = moved
        }
        return try await attempt(id, campaign, ttl: ttl, metadata: metadata, waiting: waiting)
    }

    /// The acquire of a candidate of this store: nil when its key is gone (it joins the queue again).
    private func attempt(_ id: CampaignID, _ campaign: Campaign, ttl: Duration, metadata: String?, waiting: Bool)
        async throws -> AcquireResult?
    {
        let view = state.withLock { $0.watchers[id.key]?.freshSnapshot }
        var plan = EtcdCampaignMachine.attempt(
            campaign, ttl: ttl, metadata: metadata, view: view, now: clock.now(),
            holderMayAskElsewhere: !waiting || HandedTerms.holderMayAskElsewhere)
        if case .takeHandover(let sure) = plan {
            if markLeading(id, campaign, metadata: metadata) {
                return .acquired(
                    Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: sure, metadata: metadata))
            }
            // The candidate changed meanwhile (another acquire of its holder moved it): ask etcd.
            plan = .keepAliveAndCheckHandover
        }
        if case .confirmHandover(let sure) = plan {
            // The sure time counts from before the read, so the read's own time is not promised.
            if try await handedOver(id, campaign) {
                markLeading(id, campaign, metadata: metadata)
                return .acquired(
                    Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: sure, metadata: metadata))
            }
            plan = .keepAliveAndCheckHandover
        }
        let sent = clock.now()
        switch plan {
        case .takeHandover, .confirmHandover:
            return nil
        case .keepAliveAndCheckHandover:
            async let alive = keepAlive(campaign.lease)
            async let handed = handedOver(id, campaign)
            let (left, wasHanded) = try await (alive, handed)
            guard left > 0 else { return nil }
            state.withLock { $0.machine.keptAlive(id, lease: campaign.lease, sentAt: sent) }
            if wasHanded {
                markLeading(id, campaign, metadata: metadata)
                return .acquired(
                    Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: ttl, metadata: metadata))
            }
            return try await tryLead(id, campaign, ttl: ttl, metadata: metadata)
        case .keepAliveAndLead:
            // The keep-alive and the attempt go out together: the term's ttl counts from before both.
            async let alive = keepAlive(campaign.lease)
            async let attempt = tryLead(id, campaign, ttl: ttl, metadata: metadata)
            let (left, result) = try await (alive, attempt)
            guard left > 0 else { return nil }
            state.withLock { $0.machine.keptAlive(id, lease: campaign.lease, sentAt: sent) }
            return result
        }
    }

    /// Extends the term with a keep-alive of its lease, checking in the same moment that the key is still the
    /// term's and on that lease (and publishing new metadata). A term this store does not know, or knows out of
    /// date (another instance moved or ended it), is looked up in etcd by its key, holder and token.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try await lifecycle.ready()
        let id = CampaignID(key: lease.key, holder: lease.holder)
        let now = clock.now()
        let known = state.withLock { state in
            state.machine.asked(id, now: now)
            return state.machine.renewable(id, token: lease.token)
        }
        if let known {
            if let renewed = try await renew(lease, ttl: ttl, known) { return renewed }
            forget(id, lease: known.lease)
        }
        let election = try await readElection(lease.key)
        guard let entry = EtcdCampaignMachine.term(of: lease.holder, token: lease.token, in: election),
            let campaign = try await adopt(id, entry),
            let renewed = try await renew(lease, ttl: ttl, campaign)
        else {
            throw BatonError.lost(key: lease.key)
        }
        return renewed
    }

    /// The renew of a term as `campaign` says it is; nil if etcd says otherwise (the key is gone, not this term's,
    /// or on another lease, or the lease is gone).
    private func renew(_ lease: Lease, ttl: Duration, _ campaign: Campaign) async throws -> Lease? {
        let id = CampaignID(key: lease.key, holder: lease.holder)
        var campaign = campaign
        let seconds = EtcdCampaignMachine.ttlSeconds(ttl)
        if seconds != campaign.ttlSeconds {
            guard let moved = try await move(id, campaign, ttlSeconds: seconds) else { return nil }
            campaign = moved
        }
        let ours = EtcdKeyLayout.candidateKey(lease.key, lease: campaign.name)
        let term = campaign
        let sent = clock.now()
        if lease.metadata == campaign.metadata {
            // The check shares one transaction, and the keep-alive one message, with other renews'.
            let check = TermCheck(key: ours, revision: term.revision, lease: term.lease)
            guard try await termChecks.submit(check, send: { try await checkTerms($0) }) else { return nil }
        } else {
            // The keep-alive and the check that the key is still this term's, on this lease, go out together.
            async let alive = keepAlive(term.lease)
            async let check = txn(
                "renew",
                compare: [.createRevision(of: ours, equals: term.revision), .lease(of: ours, equals: term.lease)],
                success: [.put(ours, value: Data((lease.metadata ?? "").utf8), keepLease: true)]
            )
            let (left, answer) = try await (alive, check)
            guard left > 0, answer.succeeded else { return nil }
        }
        state.withLock { state in
            state.machine.keptAlive(id, lease: term.lease, sentAt: sent)
            state.machine.renewed(id, lease: term.lease, metadata: lease.metadata)
        }
        var renewed = lease
        renewed.ttl = ttl
        return renewed
    }

    /// Records a candidate read from etcd, after a keep-alive of its lease (which tells the lease's TTL); nil if
    /// the lease is gone. A term on a lease that is not this store's session lease moves onto it: the lease may
    /// be another instance's session lease, which this store must not keep alive for the other terms on it, and
    /// which that instance ends the term on when its holder stops renewing there.
    func adopt(_ id: CampaignID, _ candidate: Candidate) async throws -> Campaign? {
        guard let lease = candidate.lease else { return nil }
        let sent = clock.now()
        let ttlSeconds = try await keepAlive(lease)
        guard ttlSeconds > 0 else { return nil }
        let now = clock.now()
        let shared = sessionLeases.isSession(lease)
        let adopted = state.withLock { state in
            state.machine.adopt(id, candidate, ttlSeconds: ttlSeconds, keptAliveAt: sent, now: now, shared: shared)
        }
        guard let adopted, adopted.leading, !shared else { return adopted }
        guard let moved = try await move(id, adopted, ttlSeconds: adopted.ttlSeconds, revokeOld: false) else {
            forget(id, lease: adopted.lease)
            return nil
        }
        return moved
    }

    /// Ends the term: hands the key to the next Baton candidate when this store's watch shows one (its lease is
    /// revoked a moment later), else deletes the term's keys (compare-and-delete) and revokes its lease. A term
    /// this store does not know is looked up in etcd by its key, holder and token.
    public func release(_ lease: Lease) async throws {
        try await lifecycle.ready()
        defer { dropHeldWatch(lease.key) }
        let id = CampaignID(key: lease.key, holder: lease.holder)
        if let campaign = state.withLock({ $0.machine.release(id, token: lease.token) }) {
            switch try await handOver(lease.key, from: campaign) {
            case .handedOver:
                // The keys are gone. A lease of the term's own, now holding none, is revoked a moment later, off
                // the successor's path (etcd would apply the revoke before the successor's check), or at the
                // store's close; a session lease goes on holding other terms.
                if !campaign.shared {
                    let now = clock.now()
                    state.withLock { $0.machine.revokeLater(campaign.lease, now: now) }
                }
                return
            case .left:
                if !campaign.shared { try? await revoke(campaign.lease) }
                return
            case .noSuccessor:
                break
            }
            if try await delete(lease, name: campaign.name) {
                if !campaign.shared { try? await revoke(campaign.lease) }
                return
            }
        }
        // Not known here, or known out of date: etcd says where the term is. Its lease is not revoked: it may be
        // another instance's session lease, holding other terms (a lease of the term's own, now holding no keys,
        // runs out by itself).
        let election = try await readElection(lease.key)
        guard let entry = EtcdCampaignMachine.term(of: lease.holder, token: lease.token, in: election),
            let name = entry.name
        else { return }
        _ = try await delete(lease, name: name)
    }

    /// Takes `holder`'s candidate out of `key`'s election, if this store keeps one that does not lead: one
    /// transaction deletes its keys while they are still that candidate's (if the queue has just made it the
    /// leader, that passes the key on to the next). Its own lease, now holding no keys, is revoked a moment later.
    /// A candidate this store does not know keeps its place until its lease runs out.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leaveQueue(key: String, holder: String) async throws {
        try await lifecycle.ready()
        let id = CampaignID(key: key, holder: holder)
        guard let campaign = state.withLock({ $0.machine.leaveQueue(id) }) else { return }
        let ours = EtcdKeyLayout.candidateKey(key, lease: campaign.name)
        _ = try await txn(
            "leaving the queue",
            compare: [.createRevision(of: ours, equals: campaign.revision), .lease(of: ours, equals: campaign.lease)],
            success: [.delete(ours), .delete(EtcdKeyLayout.campaignKey(key, lease: campaign.name))]
        )
        if !campaign.shared {
            let now = clock.now()
            state.withLock { $0.machine.revokeLater(campaign.lease, now: now) }
        }
    }

    /// Deletes the keys of the term `lease` named after `name`, if they are still that term's; whether they were.
    private func delete(_ lease: Lease, name: Int64) async throws -> Bool {
        let ours = EtcdKeyLayout.candidateKey(lease.key, lease: name)
        let answer = try await txn(
            "release",
            compare: [.createRevision(of: ours, equals: lease.token)],
            success: [.delete(ours), .delete(EtcdKeyLayout.campaignKey(lease.key, lease: name))]
        )
        return answer.succeeded
    }

    /// The head of the key's queue, unless it is a Baton candidate that has not taken the lead yet.
    public func current(key: String) async throws -> LeaderInfo? {
        try await lifecycle.ready()
        return Self.leader(of: try await readElection(key))
    }
}
