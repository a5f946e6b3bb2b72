@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

extension EtcdLeaseStore {
    // MARK: Leases

    /// Takes `key` for `holder` through etcd's queue (see the type's documentation), or renews the holder's
    /// term: joins the queue, or goes on with the holder's candidate as ``EtcdCampaignMachine`` decides.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await lifecycle.ready()
        let id = CampaignID(key: key, holder: holder)
        let now = clock.now()
        let start = state.withLock { state in
            state.machine.startAcquire(id, ttl: ttl, view: state.watchers[key]?.freshSnapshot, now: now)
        }
        switch start {
        case .join:
            return try await join(id, ttl: ttl, metadata: metadata)
        case .held(let leader):
            return .held(by: leader)
        case .campaign(var campaign, let moveTo):
            if let moveTo { campaign = try await move(id, campaign, ttlSeconds: moveTo) }
            if let result = try await attempt(id, campaign, ttl: ttl, metadata: metadata) { return result }
            forget(id, lease: campaign.lease)
            return try await join(id, ttl: ttl, metadata: metadata)
        }
    }

    /// The acquire of a candidate of this store: nil when its key is gone (it joins the queue again).
    private func attempt(_ id: CampaignID, _ campaign: Campaign, ttl: Duration, metadata: String?) async throws
        -> AcquireResult?
    {
        let view = state.withLock { $0.watchers[id.key]?.freshSnapshot }
        var plan = EtcdCampaignMachine.attempt(campaign, ttl: ttl, metadata: metadata, view: view, now: clock.now())
        if case .confirmHandover(let sure) = plan {
            // The sure time counts from before the read, so the read's own time is not promised.
            if try await handedOver(id, campaign) {
                markLeading(id, campaign, metadata: metadata)
                return .acquired(
                    Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: sure, metadata: metadata))
            }
            plan = .keepAliveAndCheckHandover
        }
        switch plan {
        case .confirmHandover:
            return nil
        case .keepAliveAndCheckHandover:
            async let alive = keepAlive(campaign.lease)
            async let handed = handedOver(id, campaign)
            let (left, wasHanded) = try await (alive, handed)
            guard left > 0 else { return nil }
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
            return left > 0 ? result : nil
        }
    }

    /// Extends the term with a keep-alive of its lease, checking in the same moment that the key is still the
    /// term's (and publishing new metadata).
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try await lifecycle.ready()
        let id = CampaignID(key: lease.key, holder: lease.holder)
        guard var campaign = state.withLock({ $0.machine.renewable(id, token: lease.token) }) else {
            throw BatonError.lost(key: lease.key)
        }
        let seconds = EtcdCampaignMachine.ttlSeconds(ttl)
        if seconds != campaign.ttlSeconds { campaign = try await move(id, campaign, ttlSeconds: seconds) }
        let ours = EtcdKeyLayout.candidateKey(lease.key, lease: campaign.lease)
        let success: [Etcdserverpb_RequestOp] =
            lease.metadata == campaign.metadata
            ? [] : [.put(ours, value: Data((lease.metadata ?? "").utf8), keepLease: true)]
        let term = campaign
        // The keep-alive and the check that the key is still this term's go out together.
        async let alive = keepAlive(term.lease)
        async let check = txn(
            "renew",
            compare: [.createRevision(of: ours, equals: term.revision)],
            success: success
        )
        let (left, answer) = try await (alive, check)
        guard left > 0 else {
            forget(id, lease: campaign.lease)
            throw BatonError.lost(key: lease.key, "etcd dropped the term's lease")
        }
        guard answer.succeeded else {
            forget(id, lease: campaign.lease)
            throw BatonError.lost(key: lease.key)
        }
        state.withLock { $0.machine.renewed(id, lease: term.lease, metadata: lease.metadata) }
        var renewed = lease
        renewed.ttl = ttl
        return renewed
    }

    /// Ends the term: hands the key to the next Baton candidate when this store's watch shows one (its lease is
    /// revoked a moment later), else revokes the term's lease; a term of another store is compare-and-deleted.
    public func release(_ lease: Lease) async throws {
        try await lifecycle.ready()
        let id = CampaignID(key: lease.key, holder: lease.holder)
        if let campaign = state.withLock({ $0.machine.release(id, token: lease.token) }) {
            if try await handOver(lease.key, from: campaign) {
                // The keys are gone. The lease, now holding none, is revoked a moment later, off the successor's
                // path (etcd would apply the revoke before the successor's check), or at the store's close.
                let now = clock.now()
                state.withLock { $0.machine.revokeLater(campaign.lease, now: now) }
            } else {
                try await revoke(campaign.lease)
            }
            return
        }
        // A term this store did not grant (another process of the same holder): compare-and-delete its keys.
        let election = try await readElection(lease.key)
        guard
            let entry = election.first(where: { $0.revision == lease.token && $0.holder == lease.holder }),
            let leaseID = entry.lease
        else { return }
        _ = try await txn(
            "release",
            compare: [.createRevision(of: entry.key, equals: entry.revision)],
            success: [
                .delete(entry.key),
                .delete(EtcdKeyLayout.campaignKey(lease.key, lease: leaseID)),
            ]
        )
    }

    /// The head of the key's queue, unless it is a Baton candidate that has not taken the lead yet.
    public func current(key: String) async throws -> LeaderInfo? {
        try await lifecycle.ready()
        return Self.leader(of: try await readElection(key))
    }
}
