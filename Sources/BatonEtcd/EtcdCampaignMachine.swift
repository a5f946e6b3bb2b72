import Baton

/// The decisions of an ``EtcdLeaseStore``'s campaigns, with no I/O, no clock of its own and no lock.
///
/// What it records of a candidate is what this store instance last learnt of it, never the authority: a term is
/// etcd's, and any instance renews, releases and observes it from its key, holder and token. Every request made
/// from a record is checked in etcd (the key's create revision and lease), and a record that etcd contradicts is
/// forgotten and read again (``adopt(_:_:ttlSeconds:keptAliveAt:now:)``).
///
/// The store feeds it what happened (a holder tries, etcd answered a keep-alive, a lease moved, a term ended)
/// together with the time of its clock and, where it matters, the latest fresh view of the key's queue from the
/// store's watch; the machine answers what to do next, and the store does it. So every decision here is a
/// function of the inputs and the times given, and tests drive it on explicit times:
/// - when a waiting candidate can be refused from the watch's view alone, with no request;
/// - whether a term handed over on release may start with no write, and for how long it is then sure
///   (``sureTerm(of:asked:now:)``);
/// - when a candidate's keys move to a lease of a new ttl;
/// - where a candidate stands in a queue (``position(of:in:)``) and whom a releasing leader hands the key to;
/// - which records of waiting candidates are dropped (their holders stopped asking here), which leases the store
///   revokes when it closes, and when the lease of a leader that handed its key over is revoked.
///
/// A waiting candidate's lease is kept alive only by its holder's asks (each waiting acquire sends one
/// keep-alive), never by the instance that made it, so a candidate that stops asking leaves the queue within its
/// ttl, whichever instance it asked through.
struct EtcdCampaignMachine {
    /// Who campaigns for a key through this store.
    struct CampaignID: Hashable, Sendable {
        let key: String
        let holder: String
    }

    /// A candidate as this store last knew it: its etcd lease and the create revision of its key. Times are the
    /// store clock's.
    struct Campaign: Sendable {
        /// The lease its keys are attached to.
        var lease: Int64
        /// The lease ID in its keys' names (`KEY/<hex>`): the lease it joined with, which a move to a lease of
        /// another ttl does not change.
        var name: Int64
        var ttlSeconds: Int64
        var revision: Int64
        var leading: Bool
        var metadata: String?
        /// When its holder last tried to acquire.
        var lastTry: Duration
        /// When the last keep-alive of its lease that etcd answered went out (or the lease's grant did).
        var lastKeepAlive: Duration
        /// Its lease is one of the store's session leases (``EtcdSessionLeases``), shared with other terms: the
        /// store ends the term itself when its holder stops renewing, and never revokes that lease for it.
        var shared = false
    }

    /// How long after a graceful handover the releasing leader's lease, which then holds no key, is revoked:
    /// later than the successor's check (etcd would apply a revoke sent at once before it), and soon enough that
    /// no lease lingers for its whole ttl.
    static let revokeDelay: Duration = .milliseconds(500)

    private(set) var campaigns: [CampaignID: Campaign] = [:]
    /// Leases to revoke once their time comes.
    private var pendingRevokes: [(lease: Int64, due: Duration)] = []
    /// Terms on a session lease whose holders stopped renewing, until their keys are deleted.
    private(set) var expiring: [CampaignID: Campaign] = [:]
    /// Terms that may have started on a session lease with no record here: the answer to their put was lost.
    private(set) var suspects: [CampaignID: Suspect] = [:]

    /// A put of a term's keys on the session lease `lease` (named after it) whose answer did not come at `since`.
    struct Suspect: Equatable {
        var name: Int64
        var lease: Int64
        var ttlSeconds: Int64
        var since: Duration
    }

    /// No term on a session lease expires before this (a lower bound: holders' asks only move their terms' ends
    /// later), so ``expiredTerms(now:)`` looks at the records only from then on.
    private var earliestExpiry: Duration?

    /// Records `campaign`, keeping ``earliestExpiry`` a lower bound.
    private mutating func record(_ id: CampaignID, _ campaign: Campaign) {
        campaigns[id] = campaign
        if campaign.shared, campaign.leading {
            let end = campaign.lastTry + .seconds(campaign.ttlSeconds)
            earliestExpiry = min(earliestExpiry ?? end, end)
        }
    }

    // MARK: Acquire

    /// How an acquire begins.
    enum AcquireStart {
        /// No candidate of this store for the holder: grant a lease and join the queue.
        case join
        /// The watch's fresh view shows the candidate behind another one: refused after a keep-alive of its lease
        /// (which keeps its place), with no other request.
        case held(LeaderInfo, Campaign)
        /// A candidate of this store: go on with it, after moving its keys onto a lease of `moveTo` seconds
        /// when that is set (the ttl asked differs from its lease's TTL).
        case campaign(Campaign, moveTo: Int64?)
    }

    /// A holder tries to acquire `id` at `now`, with `view` the fresh view of the key's queue, if any.
    mutating func startAcquire(_ id: CampaignID, ttl: Duration, view: [EtcdLeaseStore.Candidate]?, now: Duration)
        -> AcquireStart
    {
        guard var campaign = campaigns[id] else { return .join }
        campaign.lastTry = now
        campaigns[id] = campaign
        // A waiting candidate that the watch shows still behind another needs only a keep-alive: the watch wakes
        // its holder when the queue moves.
        if !campaign.leading, let view, case .behind(let leader) = Self.position(of: campaign.lease, in: view) {
            return .held(leader, campaign)
        }
        let seconds = Self.ttlSeconds(ttl)
        return .campaign(campaign, moveTo: seconds == campaign.ttlSeconds ? nil : seconds)
    }

    /// What a candidate of this store sends to take the key.
    enum AcquireAttempt: Equatable {
        /// The view shows the key handed over to this candidate, its lease is sure to live for `sure`, and its
        /// holder asks through this store instance only: the term starts with no request, promised for `sure`.
        ///
        /// Only the holder could have ended the term since, through this instance, which would know (its
        /// campaign would be gone or leading), or an operator, as with a leader's term: the holder then learns at
        /// its first renew. The view is this instance's watch, which may lag (a silent connection, a member
        /// behind), but never shows a handover that did not happen.
        case takeHandover(sure: Duration)
        /// As ``takeHandover(sure:)``, for a holder that may also ask through other instances (a client of
        /// several `baton serve` replicas; ``Baton/HandedTerms/holderMayAskElsewhere``): it may have taken the
        /// term there and released it since, while this instance's watch lags. A linearizable read confirms the
        /// handover first, and the term then starts with no write, promised for `sure`. If the read does not
        /// confirm it, go on as ``keepAliveAndCheckHandover``.
        case confirmHandover(sure: Duration)
        /// A keep-alive (the term's ttl counts from it) together with a read whether the key was handed over;
        /// if it was not, lead with a write if the candidate is the head.
        case keepAliveAndCheckHandover
        /// A keep-alive together with the write that leads if the candidate is the head (or renews its lead).
        case keepAliveAndLead
    }

    /// The attempt of `campaign` at `now` for a term of `ttl`, with `view` the fresh view of the queue, if any;
    /// `holderMayAskElsewhere` when the holder may also ask through other store instances.
    static func attempt(
        _ campaign: Campaign,
        ttl: Duration,
        metadata: String?,
        view: [EtcdLeaseStore.Candidate]?,
        now: Duration,
        holderMayAskElsewhere: Bool
    ) -> AcquireAttempt {
        // A leader, or a candidate with new metadata to publish, writes anyway.
        guard !campaign.leading, metadata == campaign.metadata else { return .keepAliveAndLead }
        let shown = view?.first.map { $0.lease == campaign.lease && !$0.waiting } ?? false
        if shown, let sure = sureTerm(of: campaign, asked: ttl, now: now) {
            return holderMayAskElsewhere ? .confirmHandover(sure: sure) : .takeHandover(sure: sure)
        }
        return .keepAliveAndCheckHandover
    }

    /// How long the lease of a waiting candidate is sure to live from `now` (its last keep-alive went out at
    /// `lastKeepAlive`, and etcd counts the lease's TTL from when it got it), capped at the ttl asked; nil when
    /// no more than half of that is left, and a keep-alive should start the term instead.
    static func sureTerm(of campaign: Campaign, asked ttl: Duration, now: Duration) -> Duration? {
        let left = campaign.lastKeepAlive + .seconds(campaign.ttlSeconds) - now
        return left > ttl / 2 ? min(ttl, left) : nil
    }

    /// Where a candidate stands in a queue.
    enum Position: Equatable {
        /// Its key is not in the queue (its lease or its keys are gone).
        case absent
        /// Its key is the oldest.
        case head
        /// Another key is older; `LeaderInfo` is that head, leading or about to.
        case behind(LeaderInfo)
    }

    /// Where the candidate of `lease` stands in `election` (candidates in queue order).
    static func position(of lease: Int64, in election: [EtcdLeaseStore.Candidate]) -> Position {
        guard election.contains(where: { $0.lease == lease }) else { return .absent }
        if election.first?.lease == lease { return .head }
        return .behind(EtcdLeaseStore.leaderOrHead(of: election))
    }

    // MARK: Campaign records

    /// A candidate joined the queue (leading or waiting), or this store learnt it from etcd.
    mutating func joined(_ id: CampaignID, _ campaign: Campaign) {
        record(id, campaign)
    }

    /// A candidate read from etcd (it joined through another store instance, or this one's record is out of
    /// date), whose lease a keep-alive sent at `keptAliveAt` found alive with a TTL of `ttlSeconds`. Recorded and
    /// returned; nil for a key not written by a Baton candidate of `id`'s holder.
    mutating func adopt(
        _ id: CampaignID, _ candidate: EtcdLeaseStore.Candidate, ttlSeconds: Int64, keptAliveAt: Duration,
        now: Duration, shared: Bool = false
    ) -> Campaign? {
        guard candidate.holder == id.holder, let lease = candidate.lease, let name = candidate.name,
            expiring[id]?.revision != candidate.revision
        else { return nil }
        let campaign = Campaign(
            lease: lease,
            name: name,
            ttlSeconds: ttlSeconds,
            revision: candidate.revision,
            leading: !candidate.waiting,
            metadata: candidate.value.isEmpty ? nil : candidate.value,
            lastTry: now,
            lastKeepAlive: keptAliveAt,
            shared: shared
        )
        record(id, campaign)
        return campaign
    }

    /// The holder's own candidate in `election` other than the one on `lease` (it joined through another store
    /// instance, or before this process restarted): the oldest, if any.
    static func ownCandidate(of holder: String, in election: [EtcdLeaseStore.Candidate], other lease: Int64?)
        -> EtcdLeaseStore.Candidate?
    {
        election.first { $0.holder == holder && $0.lease != nil && $0.lease != lease && $0.name != nil }
    }

    /// The term of `holder` with fencing token `token` in `election`, if it is still there and taken.
    static func term(of holder: String, token: Int64, in election: [EtcdLeaseStore.Candidate])
        -> EtcdLeaseStore.Candidate?
    {
        election.first { $0.revision == token && $0.holder == holder && !$0.waiting && $0.lease != nil }
    }

    /// The candidate on `lease` took the term; false if its campaign has moved on (another lease, or gone).
    mutating func markLeading(_ id: CampaignID, lease: Int64, metadata: String?) -> Bool {
        guard campaigns[id]?.lease == lease else { return false }
        campaigns[id]?.leading = true
        campaigns[id]?.metadata = metadata
        return true
    }

    /// The candidate's keys moved from `old`'s lease onto `lease` of `ttlSeconds`, granted from `grantedAt`
    /// (the create revision, and so the token and the place in the queue, stay). Returns the moved campaign;
    /// the old lease holds no keys and is revoked by the caller unless it is shared. `shared`: `lease` is a
    /// session lease.
    mutating func moved(
        _ id: CampaignID, from old: Campaign, to lease: Int64, ttlSeconds: Int64, grantedAt: Duration, shared: Bool
    ) -> Campaign {
        var moved = old
        moved.lease = lease
        moved.shared = shared
        moved.ttlSeconds = ttlSeconds
        moved.lastKeepAlive = grantedAt
        record(id, moved)
        return moved
    }

    /// A keep-alive of the candidate's `lease`, sent at `sentAt`, was answered: etcd still has it.
    mutating func keptAlive(_ id: CampaignID, lease: Int64, sentAt: Duration) {
        guard campaigns[id]?.lease == lease else { return }
        campaigns[id]?.lastKeepAlive = sentAt
    }

    /// The holder of `id` stops waiting: its candidate, if this store keeps one that does not lead, is forgotten
    /// and returned (its keys are to be deleted). A leading candidate is left to its release or expiry.
    mutating func leaveQueue(_ id: CampaignID) -> Campaign? {
        guard let campaign = campaigns[id], !campaign.leading else { return nil }
        campaigns[id] = nil
        return campaign
    }

    /// The candidate on `lease` is gone (its lease or keys are gone, or it failed to join).
    mutating func forget(_ id: CampaignID, lease: Int64) {
        if campaigns[id]?.lease == lease { campaigns[id] = nil }
    }

    /// The leading campaign of the term `token`, which a renew may extend; nil if this store holds no such term.
    func renewable(_ id: CampaignID, token: Int64) -> Campaign? {
        guard let campaign = campaigns[id], campaign.revision == token, campaign.leading else { return nil }
        return campaign
    }

    /// The holder of `id` asks at `now` (a renew): a term on a session lease counts its ttl from its holder's last
    /// ask (``expiredTerms(now:)``).
    mutating func asked(_ id: CampaignID, now: Duration) {
        campaigns[id]?.lastTry = now
    }

    /// A renew published `metadata`.
    mutating func renewed(_ id: CampaignID, lease: Int64, metadata: String?) {
        guard campaigns[id]?.lease == lease else { return }
        campaigns[id]?.metadata = metadata
    }

    /// The term `token` is released: its campaign leaves this store (nil if this store does not know the term).
    mutating func release(_ id: CampaignID, token: Int64) -> Campaign? {
        guard let campaign = campaigns[id], campaign.revision == token else { return nil }
        campaigns[id] = nil
        return campaign
    }

    // MARK: Handover

    /// The next candidate a releasing leader hands the key to.
    struct Successor {
        let candidate: EtcdLeaseStore.Candidate
        let holder: String
        /// The lease ID in its keys' names.
        let name: Int64
    }

    /// Whom the leader `campaign` hands the key to on release: the next candidate of `view` (the fresh view of
    /// the queue), when the leader heads it and that candidate is a Baton candidate still waiting. Nil without a
    /// fresh view, or with no such candidate: then the release just leaves.
    static func successor(of campaign: Campaign, view: [EtcdLeaseStore.Candidate]?) -> Successor? {
        guard let view, view.first?.revision == campaign.revision, let next = view.dropFirst().first,
            let holder = next.holder, next.waiting, let name = next.name
        else { return nil }
        return Successor(candidate: next, holder: holder, name: name)
    }

    /// The leader's keys were handed over at `now`: its lease, holding none now, is revoked after
    /// ``revokeDelay``.
    mutating func revokeLater(_ lease: Int64, now: Duration) {
        pendingRevokes.append((lease, now + Self.revokeDelay))
    }

    // MARK: Upkeep

    /// Leases to revoke at `now`: those of handovers whose delay is over. Records of waiting candidates whose
    /// holders have not asked through this store for longer than their ttl are dropped (their leases, kept alive
    /// only by their holders' asks, run out in etcd by themselves unless the holders ask through another instance).
    mutating func upkeep(now: Duration) -> [Int64] {
        for (id, campaign) in campaigns
        where !campaign.leading && now - campaign.lastTry > .seconds(campaign.ttlSeconds) {
            campaigns[id] = nil
        }
        let due = pendingRevokes.filter { $0.due <= now }.map(\.lease)
        pendingRevokes.removeAll { $0.due <= now }
        return due
    }

    /// The terms on a session lease whose holders have not asked (acquired or renewed) for longer than their
    /// ttl at `now`, to be ended with a delete of their keys (compared with their create revision and lease): the
    /// session lease lives on for the other terms on it, so etcd does not expire these. Each leaves the records
    /// at once, so a late renew of it fails and it is not adopted again, and stays among the returned terms
    /// until ``ended(_:revision:)`` says its keys are gone (a delete that failed is sent again).
    mutating func expiredTerms(now: Duration) -> [(id: CampaignID, campaign: Campaign)] {
        if let earliestExpiry, now > earliestExpiry {
            var next: Duration?
            for (id, campaign) in campaigns where campaign.shared && campaign.leading {
                let end = campaign.lastTry + .seconds(campaign.ttlSeconds)
                if now > end {
                    campaigns[id] = nil
                    expiring[id] = campaign
                } else {
                    next = min(next ?? end, end)
                }
            }
            self.earliestExpiry = next
        }
        return expiring.map { ($0.key, $0.value) }
    }

    /// The put of a term's keys on a session lease got no answer: if it was applied, the term has no record here,
    /// and the session lease (kept alive by the other terms) would keep it forever unless its holder acquires again.
    mutating func suspect(_ id: CampaignID, _ suspect: Suspect) {
        suspects[id] = suspect
    }

    /// The suspects to look for in etcd at `now`: those older than their ttl whose holders have not taken them
    /// up since (a holder that acquires again adopts its term, and its record then names the suspect's key).
    mutating func dueSuspects(now: Duration) -> [(id: CampaignID, suspect: Suspect)] {
        var due: [(id: CampaignID, suspect: Suspect)] = []
        for (id, suspect) in suspects {
            if campaigns[id]?.name == suspect.name {
                suspects[id] = nil
            } else if now - suspect.since > .seconds(suspect.ttlSeconds) {
                due.append((id, suspect))
            }
        }
        return due
    }

    /// The suspect of `id` is settled: its keys are gone, or were never there.
    mutating func settled(_ id: CampaignID, _ suspect: Suspect) {
        if suspects[id] == suspect { suspects[id] = nil }
    }

    /// The keys of the expiring term `revision` of `id` are gone.
    mutating func ended(_ id: CampaignID, revision: Int64) {
        if expiring[id]?.revision == revision { expiring[id] = nil }
    }

    /// The store closes: the leases to revoke so their keys leave their queues at once: the waiting candidates
    /// that asked through this store, and the handovers' pending revokes. Terms are not revoked: a term is the
    /// store's, not this instance's (its holder may go on renewing it through another instance), and an elector
    /// releases its own term before its store closes.
    mutating func close() -> [Int64] {
        defer {
            campaigns = [:]
            pendingRevokes = []
            expiring = [:]
            suspects = [:]
        }
        return campaigns.values.filter { !$0.leading && !$0.shared }.map(\.lease) + pendingRevokes.map(\.lease)
    }

    /// A ttl in etcd's whole seconds, rounded up (the store may expire a term later than asked, never earlier).
    static func ttlSeconds(_ ttl: Duration) -> Int64 {
        let (seconds, attoseconds) = ttl.components
        return max(1, seconds + (attoseconds > 0 ? 1 : 0))
    }
}
