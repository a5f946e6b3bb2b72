import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

extension LeaderElector {
    // MARK: Performing actions

    /// Performs `actions`; returns the campaign's end (`.finish`) if they contain it, nil otherwise. `deadline` is
    /// the deadline of the term led after them, if any.
    ///
    /// Not `async`: whatever waits runs in a task of its own, and the end is awaited by the caller. A campaign's
    /// task keeps the memory of its deepest frames for as long as it runs, and thousands of electors run at once.
    func perform(
        _ actions: [ElectorStateMachine.Action],
        deadline: Duration?,
        in campaign: Campaign
    ) -> CampaignEnd? {
        var leaveQueue = false
        for action in actions {
            switch action {
            case .acquire(let id):
                campaign.requests.start { await self.sendAcquire(id, into: campaign) }
            case .renew(let id, let lease):
                campaign.requests.start { await self.sendRenew(id, lease, into: campaign) }
            case .release(let release):
                campaign.startRelease { await self.releaseAfterWork(release) }
            case .schedule(let time):
                campaign.schedule(at: time)
            case .elected(let lease):
                becameLeader(lease, deadline: deadline)
            case .extended(let lease):
                extended(lease, deadline: deadline)
            case .demoted(let lease, let reason):
                lostLeadership(lease, reason)
            case .leaderChanged(let info):
                observedLeader(info)
            case .storeError(let error):
                storeFailed(error)
            case .checkPresence(let id):
                campaign.requests.start { await self.checkPresence(id, into: campaign) }
            case .check(let id):
                campaign.requests.start { await self.check(id, into: campaign) }
            case .leaveQueue:
                leaveQueue = true
            case .finish(let release):
                return CampaignEnd(release: release, leaveQueue: leaveQueue)
            }
        }
        return nil
    }

    /// The end of a campaign: the release of the term led, if any, once its work has returned; or whether to
    /// leave the store's queue of waiting candidates.
    struct CampaignEnd {
        var release: ElectorStateMachine.Release?
        var leaveQueue = false
    }

    /// Ends a campaign: releases the term led once its work has returned (or leaves the store's queue), and
    /// leaves the presence group.
    func finish(_ end: CampaignEnd) async {
        if let release = end.release { await releaseAfterWork(release) }
        if end.leaveQueue {
            let store = self.store
            let key = self.key
            let holder = self.holder
            let ttl = configuration.ttl
            await uncancelled("leave the queue; the place will expire") {
                try await store.leaveQueue(key: key, holder: holder)
                // A release that landed before the leave (or an acquire whose answer never came) may have handed the
                // key to this candidate: a term it never knew of and never worked in. Given back, so the key does not
                // stay blocked for its ttl; never a term whose work still runs here.
                if let handed = try await store.current(key: key), handed.holder == holder,
                    !self.hasWork(of: handed.token)
                {
                    try await store.release(Lease(key: key, holder: holder, token: handed.token, ttl: ttl))
                }
            }
        }
        if configuration.quorum != nil { await leavePresence() }
    }

    func sendAcquire(_ id: ElectorStateMachine.RequestID, into campaign: Campaign) async {
        // A release of an earlier term that has not landed yet would free the key under the term taken up now.
        await waitUntilWritesSettle()
        if Task.isCancelled { return }
        let started = clock.now()
        let answer: Input
        do {
            switch try await store.acquire(
                key: key,
                holder: holder,
                ttl: configuration.ttl,
                metadata: configuration.metadata,
                waiting: true
            ) {
            case .acquired(let lease): answer = .acquired(id, lease)
            case .held(let info): answer = .held(id, info)
            }
            metrics.acquireDuration.recordNanoseconds((clock.now() - started).batonNanoseconds)
        } catch {
            if Task.isCancelled { return }
            answer = .acquireFailed(id, Self.batonError(error))
        }
        campaign.send(answer)
    }

    func sendRenew(
        _ id: ElectorStateMachine.RequestID,
        _ lease: Lease,
        into campaign: Campaign
    ) async {
        let answer: Input
        do {
            answer = .renewed(
                id, try await inTermContext(lease.token) { try await store.renew(lease, ttl: configuration.ttl) })
        } catch {
            if Task.isCancelled { return }
            let error = Self.batonError(error)
            if error.code == .lost {
                answer = .renewLost(id)
            } else {
                metrics.renewFailures.increment()
                answer = .renewFailed(id, error)
            }
        }
        campaign.send(answer)
    }

    /// Reads the store's current leader of the key for a waiting candidate whose feed looks healthy.
    func check(_ id: ElectorStateMachine.RequestID, into campaign: Campaign) async {
        let answer: Input
        do {
            answer = .checked(id, try await store.current(key: key))
        } catch {
            if Task.isCancelled { return }
            answer = .checkFailed(id, Self.batonError(error))
        }
        campaign.send(answer)
    }

    /// Quorum mode: heartbeats this elector into its presence group and counts the live members.
    func checkPresence(_ id: ElectorStateMachine.RequestID, into campaign: Campaign) async {
        let group = configuration.presenceGroup ?? key
        let answer: Input
        do {
            try await store.heartbeat(group: group, member: holder, ttl: configuration.ttl)
            answer = .presence(id, alive: try await store.members(group: group).count)
        } catch {
            if Task.isCancelled { return }
            answer = .presenceFailed(id, Self.batonError(error))
        }
        campaign.send(answer)
    }

    /// Quorum mode: leaves the presence group at the end of a run, so the others count one member fewer at once.
    func leavePresence() async {
        let store = self.store
        let group = configuration.presenceGroup ?? key
        let holder = self.holder
        await uncancelled("leave the presence group") { try await store.leave(group: group, member: holder) }
    }

    /// Follows the store's change feed for the key until `follower` is stopped, resubscribing with backoff when
    /// it fails. A push observation: no task waits while nothing changes.
    func followChanges(_ follower: ChangeFollower, failures: Int = 0) {
        let observation: ChangeObservation
        do {
            // Named, so that a store telling many electors of this process about a release tells the next leader
            // first.
            observation = try ObserverHolder.$current.withValue(holder) {
                try observeChanges(follower, failures: failures)
            }
        } catch {
            logger.debug("change feed failed", metadata: ["baton.error": "\(error)"])
            resubscribe(follower, failures: failures + 1)
            return
        }
        follower.observing(observation)
    }

    private func observeChanges(_ follower: ChangeFollower, failures: Int) throws -> ChangeObservation {
        try store.observe(key: key) { [weak self, weak follower] observation in
            guard let self, let follower else { return }
            switch observation {
            case .leader(let info):
                follower.send(.observed(info))
            case .ended(let error):
                if let error { self.logger.debug("change feed failed", metadata: ["baton.error": "\(error)"]) }
                self.resubscribe(follower, failures: failures + 1)
            }
        }
    }

    /// After the feed ended: reports it lost and subscribes again after a backoff.
    private func resubscribe(_ follower: ChangeFollower, failures: Int) {
        guard !follower.isStopped else { return }
        follower.send(.feedLost)
        let delay = configuration.backoff.nominalDelay(attempt: max(1, failures))
        let clock = self.clock
        follower.retrying(
            Task { [weak self, weak follower] in
                do { try await clock.sleep(for: delay) } catch { return }
                guard let self, let follower, !follower.isStopped else { return }
                self.followChanges(follower, failures: failures)
            })
    }
}
