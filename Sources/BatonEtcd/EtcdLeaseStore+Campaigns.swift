@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

extension EtcdLeaseStore {
    // MARK: Campaigns

    /// The acquire of a holder without a candidate this store knows: grant a lease, put the key, and lead at once
    /// if the queue was empty, else stay in the queue if `waiting` (an acquire that does not wait revokes the lease
    /// before it answers, which removes its key). If the queue shows that the holder has a candidate already
    /// (joined through another store instance), the new key leaves again and the acquire goes on with that one.
    func join(_ id: CampaignID, ttl: Duration, metadata: String?, waiting: Bool) async throws -> AcquireResult {
        let ttlSeconds = EtcdCampaignMachine.ttlSeconds(ttl)
        if let lease = try await leadOnSessionLease(id, ttlSeconds: ttlSeconds, ttl: ttl, metadata: metadata) {
            holdWatch(id.key, aloneAs: id)
            return .acquired(lease)
        }
        // etcd counts the new lease's TTL from when it gets the grant, after this.
        let granted = clock.now()
        let leaseID = try await grant(ttlSeconds)
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: leaseID)
        let prefix = EtcdKeyLayout.electionPrefix(id.key)
        let value = Data((metadata ?? "").utf8)
        func puts(_ mark: String) -> [Etcdserverpb_RequestOp] {
            [
                .put(ours, value: value, lease: leaseID),
                .put(
                    EtcdKeyLayout.campaignKey(id.key, lease: leaseID),
                    value: Data((mark + id.holder).utf8),
                    lease: leaseID
                ),
            ]
        }
        let answer: Etcdserverpb_TxnResponse
        do {
            answer = try await txn(
                "acquire",
                compare: [.createRevision(of: ours, equals: 0), .noKeys(under: prefix)],
                success: puts(Self.leadingMark),
                failure: [
                    .nested(compare: [.createRevision(of: ours, equals: 0)], success: puts(Self.waitingMark))
                ] + Self.electionReads(id.key)
            )
        } catch {
            try? await revoke(leaseID)
            throw error
        }
        var campaign = Campaign(
            lease: leaseID,
            name: leaseID,
            ttlSeconds: ttlSeconds,
            revision: answer.header.revision,
            leading: answer.succeeded,
            metadata: metadata,
            lastTry: clock.now(),
            lastKeepAlive: granted
        )
        if answer.succeeded {
            state.withLock { $0.machine.joined(id, campaign) }
            holdWatch(id.key, aloneAs: id)
            return .acquired(
                Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: ttl, metadata: metadata))
        }
        let election = Self.parseElection(id.key, answer.responses.dropFirst())
        if let own = EtcdCampaignMachine.ownCandidate(of: id.holder, in: election, other: leaseID) {
            try? await revoke(leaseID)
            return try await rejoin(id, own, election: election, ttl: ttl, metadata: metadata)
        }
        guard let mine = election.first(where: { $0.lease == leaseID }) else {
            try? await revoke(leaseID)
            throw BatonError.storeUnavailable("acquire: etcd did not store the candidate key of \(id.holder)")
        }
        campaign.revision = mine.revision
        state.withLock { $0.machine.joined(id, campaign) }
        let result: AcquireResult
        switch EtcdCampaignMachine.position(of: leaseID, in: election) {
        case .head:
            // The head of the queue already (elections named KEY/... share the prefix but not the queue).
            result =
                try await tryLead(id, campaign, ttl: ttl, metadata: metadata)
                ?? .held(by: Self.leaderOrHead(of: election))
        case .behind(let leader):
            result = .held(by: leader)
        case .absent:
            result = .held(by: Self.leaderOrHead(of: election))
        }
        if case .held = result, !waiting {
            // Refused, and its holder does not wait: it leaves no trace.
            forget(id, lease: leaseID)
            try? await revoke(leaseID)
        }
        return result
    }

    /// Takes a key that no candidate holds with keys on this store's session lease of `ttlSeconds`, kept alive
    /// together with the try (so the term lasts its ttl from before the try): the term of a holder that finds
    /// the key free. Nil when a candidate holds the key, or the session lease's name is taken under it: the
    /// holder then joins the queue with a lease of its own.
    private func leadOnSessionLease(_ id: CampaignID, ttlSeconds: Int64, ttl: Duration, metadata: String?)
        async throws -> Lease?
    {
        // A lease etcd dropped between the look-up and the put is granted anew, once.
        for _ in 0..<2 {
            let lease = try await sessionLeases.lease(ttlSeconds: ttlSeconds) { try await grant(ttlSeconds) }
            let ours = EtcdKeyLayout.candidateKey(id.key, lease: lease)
            let sent = clock.now()
            let put: Etcdserverpb_TxnResponse
            do {
                put = try await txn(
                    "acquire",
                    compare: [
                        .createRevision(of: ours, equals: 0), .noKeys(under: EtcdKeyLayout.electionPrefix(id.key)),
                    ],
                    success: [
                        .put(ours, value: Data((metadata ?? "").utf8), lease: lease),
                        .put(
                            EtcdKeyLayout.campaignKey(id.key, lease: lease),
                            value: Data((Self.leadingMark + id.holder).utf8),
                            lease: lease
                        ),
                    ]
                )
            } catch let error as BatonError where Self.isLeaseNotFound(error) {
                sessionLeases.lost(lease)
                continue
            } catch {
                // The put may have been applied: the store looks for its keys after the ttl.
                let suspect = EtcdCampaignMachine.Suspect(
                    name: lease, lease: lease, ttlSeconds: ttlSeconds, since: clock.now())
                state.withLock { $0.machine.suspect(id, suspect) }
                throw error
            }
            guard put.succeeded else { return nil }
            let campaign = Campaign(
                lease: lease,
                name: lease,
                ttlSeconds: ttlSeconds,
                revision: put.header.revision,
                leading: true,
                metadata: metadata,
                lastTry: sent,
                lastKeepAlive: sent,
                shared: true
            )
            // Recorded before the keep-alive: if that fails, the store still ends the term once its holder does
            // not come back for it within its ttl.
            state.withLock { $0.machine.joined(id, campaign) }
            // The keep-alive goes out after the try (one after the other: 10,000 electors starting at once make
            // no tasks for it), so the term lasts its ttl from before the try. A lease gone by then took the keys
            // with it.
            guard try await keepAlive(lease) > 0 else {
                forget(id, lease: lease)
                continue
            }
            return Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: ttl, metadata: metadata)
        }
        return nil
    }

    /// Goes on with the holder's candidate `own` that joined through another store instance (or before a
    /// restart): its live term is renewed, its place in the queue kept.
    private func rejoin(
        _ id: CampaignID, _ own: Candidate, election: [Candidate], ttl: Duration, metadata: String?
    ) async throws -> AcquireResult {
        let others = election.filter { $0.revision != own.revision }
        guard let campaign = try await adopt(id, own) else { return .held(by: Self.leaderOrHead(of: others)) }
        let seconds = EtcdCampaignMachine.ttlSeconds(ttl)
        let moveTo = seconds == campaign.ttlSeconds ? nil : seconds
        // A candidate that joined through another instance: its holder asks there too, so a handover the watch
        // shows is confirmed by a read (`waiting: false`).
        if let result = try await go(id, campaign, moveTo: moveTo, ttl: ttl, metadata: metadata, waiting: false) {
            return result
        }
        forget(id, lease: campaign.lease)
        return .held(by: Self.leaderOrHead(of: others))
    }

    /// The acquire of a holder whose candidate key is in the queue: lead if it is the head (in one transaction
    /// with the check), else answer who is ahead. Nil when the key is gone.
    func tryLead(_ id: CampaignID, _ campaign: Campaign, ttl: Duration, metadata: String?) async throws
        -> AcquireResult?
    {
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.name)
        let lead: [Etcdserverpb_RequestOp] = [
            .put(ours, value: Data((metadata ?? "").utf8), keepLease: true),
            .put(
                EtcdKeyLayout.campaignKey(id.key, lease: campaign.name),
                value: Data((Self.leadingMark + id.holder).utf8),
                keepLease: true
            ),
        ]
        let lease = Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: ttl, metadata: metadata)
        let answer = try await txn(
            "acquire",
            compare: [
                .createRevision(of: ours, equals: campaign.revision),
                .lease(of: ours, equals: campaign.lease),
                .noKeys(under: EtcdKeyLayout.electionPrefix(id.key), createdBefore: campaign.revision),
            ],
            success: lead,
            failure: Self.electionReads(id.key)
        )
        if answer.succeeded {
            markLeading(id, campaign, metadata: metadata)
            return .acquired(lease)
        }
        let election = Self.parseElection(id.key, answer.responses[...])
        switch EtcdCampaignMachine.position(of: campaign.lease, in: election) {
        case .absent:
            return nil
        case .head:
            // Head of this queue, but a key of an election named KEY/... is older: lead with the plain check.
            let confirm = try await txn(
                "acquire",
                compare: [
                    .createRevision(of: ours, equals: campaign.revision), .lease(of: ours, equals: campaign.lease),
                ],
                success: lead
            )
            guard confirm.succeeded else { return nil }
            markLeading(id, campaign, metadata: metadata)
            return .acquired(lease)
        case .behind(let leader):
            return .held(by: leader)
        }
    }

    /// Marks a campaign as leading, and has its key's watcher tell this store's subscribers again: they were
    /// told "no leader" while the campaign waited here, and the watch may have shown its lead before this mark.
    /// False if this store's campaign is no longer on `campaign`'s lease (nothing is marked).
    @discardableResult
    func markLeading(_ id: CampaignID, _ campaign: Campaign, metadata: String?) -> Bool {
        let (marked, watcher) = state.withLock { state -> (Bool, EtcdElectionWatcher?) in
            guard state.machine.markLeading(id, lease: campaign.lease, metadata: metadata) else { return (false, nil) }
            return (true, state.watchers[id.key])
        }
        watcher?.republish()
        holdWatch(id.key)
        return marked
    }

    /// Keeps the watch of `key`, which this store now leads, running until the term ends here (starting one if
    /// none runs), so that the release knows the queue without reading it: the holder's change feed stops while
    /// it leads. At most ``maximumHeldWatches`` keys at once.
    ///
    /// With `aloneAs`, the candidate of that holder has just taken the free key (its put compared that the queue
    /// was empty): a watch started for it begins right after that put, from the queue holding it alone, without
    /// reading the queue.
    func holdWatch(_ key: String, aloneAs sole: CampaignID? = nil) {
        let (wanted, campaign) = state.withLock { state in
            (
                state.heldWatches[key] == nil && state.heldWatches.count < state.heldWatchLimit,
                sole.flatMap { state.machine.campaigns[$0] }
            )
        }
        guard wanted else { return }
        let seed = campaign.map { campaign in
            (
                election: [
                    Candidate(
                        key: EtcdKeyLayout.candidateKey(key, lease: campaign.name), revision: campaign.revision,
                        lease: campaign.lease, name: campaign.name, value: campaign.metadata ?? "",
                        holder: sole?.holder, waiting: false)
                ],
                revision: campaign.revision
            )
        }
        guard let (watcher, id) = try? watching(key, seed: seed, subscribe: { $0.hold() }) else { return }
        let kept = state.withLock { state -> Bool in
            guard state.heldWatches[key] == nil else { return false }
            state.heldWatches[key] = (watcher, id)
            return true
        }
        if !kept { unwatch(key, watcher, id) }
    }

    /// Sets how many keys this store watches while it leads them (for tests; see ``maximumHeldWatches``).
    func limitHeldWatches(to limit: Int) {
        state.withLock { $0.heldWatchLimit = limit }
    }

    /// Stops holding the watch of `key` (its term ended here); the watch stops if nobody else follows the key.
    func dropHeldWatch(_ key: String) {
        guard let held = state.withLock({ $0.heldWatches.removeValue(forKey: key) }) else { return }
        unwatch(key, held.watcher, held.id)
    }

    /// How many times this store's watch of `key` has read the queue (for tests; nil when no watch runs).
    func queueReads(of key: String) -> Int? {
        state.withLock { $0.watchers[key] }?.reads
    }

    /// Whether this store's watch of `key` has an up-to-date view of its queue (for tests).
    func hasFreshView(of key: String) -> Bool {
        freshView(of: key) != nil
    }

    /// The up-to-date view of `key`'s queue from this store's watch, if it has one (for tests).
    func freshView(of key: String) -> [Candidate]? {
        state.withLock { $0.watchers[key] }?.freshSnapshot
    }

    /// Whether the leader before this waiting candidate handed it the key: its key is the oldest and its campaign
    /// record carries the leading mark. A read, no write.
    func handedOver(_ id: CampaignID, _ campaign: Campaign) async throws -> Bool {
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.name)
        let answer = try await txn(
            "acquire",
            compare: [
                .createRevision(of: ours, equals: campaign.revision),
                .lease(of: ours, equals: campaign.lease),
                .noKeys(under: EtcdKeyLayout.electionPrefix(id.key), createdBefore: campaign.revision),
                .value(
                    of: EtcdKeyLayout.campaignKey(id.key, lease: campaign.name),
                    equals: Data((Self.leadingMark + id.holder).utf8)
                ),
            ],
            success: []
        )
        return answer.succeeded
    }

    /// How ``handOver(_:from:)`` ended a term.
    enum Release {
        /// The key went to the next Baton candidate in the same transaction (the term's keys are gone).
        case handedOver
        /// Nobody waited behind the term: its keys were deleted.
        case left
        /// No successor to hand to, and the keys may still be there: the caller deletes them.
        case noSuccessor
    }

    /// A graceful handover: the releasing leader deletes its keys and, in the same transaction, marks the next
    /// Baton candidate in the queue as leading, so the successor's acquire is a check rather than a write (the
    /// successor's store keeps reporting it as waiting to its own subscribers until its holder acquires; if the
    /// holder never does, its lease runs out within the ttl as a leader's would). Whom to hand over to is
    /// ``EtcdCampaignMachine/successor(of:view:)``'s decision, on this store's watch of the key or else on the queue
    /// as etcd has it.
    func handOver(_ key: String, from campaign: Campaign) async throws -> Release {
        let ours = EtcdKeyLayout.candidateKey(key, lease: campaign.name)
        let leave: [Etcdserverpb_RequestOp] = [
            .delete(ours), .delete(EtcdKeyLayout.campaignKey(key, lease: campaign.name)),
        ]
        // A leader follows no change feed, so its store seldom watches the key (a term just begun, for one). Then
        // one transaction leaves if nobody was created in the queue after the term (etcd compares every key of the
        // range), or else reads the queue: a release with nobody waiting costs one request, like a delete. Without
        // the handover the successor would find the key free and take it with a write of its own, which waits for
        // etcd's disk as long again.
        var view = state.withLock { $0.watchers[key]?.freshSnapshot }
        if view == nil {
            let answer = try await txn(
                "release",
                compare: [
                    .createRevision(of: ours, equals: campaign.revision),
                    .noKeys(under: EtcdKeyLayout.electionPrefix(key), createdAfter: campaign.revision),
                ],
                success: leave,
                failure: Self.electionReads(key)
            )
            if answer.succeeded { return .left }
            view = Self.parseElection(key, answer.responses[...])
        }
        guard let successor = EtcdCampaignMachine.successor(of: campaign, view: view) else { return .noSuccessor }
        _ = try await txn(
            "release",
            compare: [
                .createRevision(of: ours, equals: campaign.revision),
                .createRevision(of: successor.candidate.key, equals: successor.candidate.revision),
            ],
            success: leave + [
                .put(
                    EtcdKeyLayout.campaignKey(key, lease: successor.name),
                    value: Data((Self.leadingMark + successor.holder).utf8),
                    keepLease: true
                ),
                // Rewritten unchanged, so every watcher of the election sees the handover in one event batch.
                .put(successor.candidate.key, value: Data(successor.candidate.value.utf8), keepLease: true),
            ],
            failure: leave
        )
        return .handedOver
    }

    /// Moves a candidate's keys onto another lease of `ttlSeconds` (the create revision stays, so the token and
    /// the place in the queue stay): a term onto this store's session lease of that ttl, a waiting candidate
    /// onto a new lease of its own. The old lease is revoked if it was the candidate's own and `revokeOld`.
    /// Returns the campaign as it is now, or nil if its keys are gone or on another lease than this store knew.
    func move(_ id: CampaignID, _ campaign: Campaign, ttlSeconds: Int64, revokeOld: Bool = true) async throws
        -> Campaign?
    {
        let granted = clock.now()
        let toSession = campaign.leading
        let newLease = toSession ? try await liveSessionLease(ttlSeconds) : try await grant(ttlSeconds)
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.name)
        let answer: Etcdserverpb_TxnResponse
        do {
            answer = try await txn(
                "move to another lease",
                compare: [
                    .createRevision(of: ours, equals: campaign.revision), .lease(of: ours, equals: campaign.lease),
                ],
                success: [
                    .put(ours, lease: newLease),
                    .put(EtcdKeyLayout.campaignKey(id.key, lease: campaign.name), lease: newLease),
                ]
            )
        } catch let error as BatonError where toSession && Self.isLeaseNotFound(error) {
            sessionLeases.lost(newLease)
            throw error
        }
        guard answer.succeeded else {
            if !toSession { try? await revoke(newLease) }
            return nil
        }
        // The keys keep the old lease's hex in their names; the old lease itself has no keys of theirs left.
        let moved = state.withLock {
            $0.machine.moved(
                id, from: campaign, to: newLease, ttlSeconds: ttlSeconds, grantedAt: granted, shared: toSession)
        }
        if revokeOld, !campaign.shared { try? await revoke(campaign.lease) }
        return moved
    }

    /// The session lease of `ttlSeconds`, kept alive just now: a term moved onto it must not go with it if its
    /// last keep-alive was long ago (no term on it renewed lately) and it runs out before the term's next renew.
    /// A lease found gone is replaced, once.
    private func liveSessionLease(_ ttlSeconds: Int64) async throws -> Int64 {
        for _ in 0..<2 {
            let lease = try await sessionLeases.lease(ttlSeconds: ttlSeconds) { try await grant(ttlSeconds) }
            if try await keepAlive(lease) > 0 { return lease }
        }
        throw BatonError.storeUnavailable("etcd dropped the leases it granted at once (ttl \(ttlSeconds) s)")
    }

    /// Ends a term whose put got no answer (``EtcdCampaignMachine/suspect(_:_:)``), if it is there and its holder
    /// has not taken it up: a delete compared with the key's create and modification revisions and lease, read
    /// just before (the holder's acquire, if it comes first, rewrites the key and so fails the comparison).
    private func settle(_ id: CampaignID, _ suspect: EtcdCampaignMachine.Suspect) async throws {
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: suspect.name)
        let read = try await txn("read a term whose put got no answer", compare: [], success: [.keyOnly(ours)])
        if let found = read.responses.first?.responseRange.kvs.first, found.lease == suspect.lease,
            state.withLock({ $0.machine.campaigns[id]?.revision != found.createRevision })
        {
            _ = try await txn(
                "end a term whose put got no answer",
                compare: [
                    .createRevision(of: ours, equals: found.createRevision),
                    .modRevision(of: ours, equals: found.modRevision),
                    .lease(of: ours, equals: suspect.lease),
                ],
                success: [.delete(ours), .delete(EtcdKeyLayout.campaignKey(id.key, lease: suspect.name))]
            )
        }
        state.withLock { $0.machine.settled(id, suspect) }
    }

    func forget(_ id: CampaignID, lease: Int64) {
        state.withLock { $0.machine.forget(id, lease: lease) }
        dropHeldWatch(id.key)
    }

    /// One round of upkeep, as ``EtcdCampaignMachine/upkeep(now:)`` and
    /// ``EtcdCampaignMachine/expiredTerms(now:)`` decide: revokes the leases of handovers whose delay is over, and
    /// ends the terms on a session lease whose holders stopped renewing. (Waiting candidates' leases are kept
    /// alive only by their holders' asks.)
    func upkeep() async {
        let now = clock.now()
        let (revoke, expired) = state.withLock { ($0.machine.upkeep(now: now), $0.machine.expiredTerms(now: now)) }
        for lease in revoke { try? await self.revoke(lease) }
        let suspects = state.withLock { $0.machine.dueSuspects(now: now) }
        for (id, suspect) in suspects { try? await settle(id, suspect) }
        await withDiscardingTaskGroup { group in
            for (id, campaign) in expired {
                group.addTask {
                    let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.name)
                    // Compared with the lease too: a term that another instance moved onto its own session lease
                    // (its holder renews there) is that instance's to end.
                    guard
                        (try? await self.txn(
                            "end a term whose holder stopped renewing",
                            compare: [
                                .createRevision(of: ours, equals: campaign.revision),
                                .lease(of: ours, equals: campaign.lease),
                            ],
                            success: [.delete(ours), .delete(EtcdKeyLayout.campaignKey(id.key, lease: campaign.name))]
                        )) != nil
                    else { return }  // Sent again at the next upkeep.
                    self.state.withLock { $0.machine.ended(id, revision: campaign.revision) }
                }
            }
        }
    }
}
