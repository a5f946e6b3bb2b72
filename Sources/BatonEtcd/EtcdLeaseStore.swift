import Baton
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// A ``Baton/LeaseStore`` on etcd v3, over gRPC: `etcd://host:port[,host:port...]`, or `etcds://` for TLS
/// (`?ca_file=PATH` trusts a private certificate authority); `etcd://user:password@host:port` authenticates.
/// Requests go to one endpoint and move to the next when it cannot be reached.
///
/// ## Elections: etcd's own queue
///
/// A key is led the way etcd's `concurrency.Election` (and so `etcdctl elect KEY`) leads it: every candidate
/// puts `KEY/<its lease ID in hex>` (only if that key's create revision is 0, in one transaction), attached to
/// an etcd lease of its own, and the candidate with the lowest create revision leads. The fencing token is the
/// leader key's create revision, so it rises with every term. See ``EtcdKeyLayout`` for the keys.
///
/// The store contract's ``acquire(key:holder:ttl:metadata:)`` is a try that does not block; on etcd it maps to
/// the queue like this:
/// - The first acquire by a holder grants an etcd lease of the ttl (rounded up to whole seconds, as etcd counts)
///   and puts the holder's candidate key. With no candidate before it, the holder leads at once. Otherwise it
///   is refused with ``Baton/AcquireResult/held(by:)`` and its key *stays in the queue*, marked waiting.
/// - A waiting candidate's key keeps its place while its holder goes on trying: the store keeps its lease alive
///   as long as the holder called acquire within the last ttl or a ``changes(key:)`` subscription to the key is
///   open in this store (an elector keeps one while it campaigns). When neither holds, the store revokes the
///   lease and the key leaves the queue.
/// - When the keys before it are gone, a waiting candidate is at the head of the queue but does not lead until
///   its holder acquires again: until then ``current(key:)`` and ``changes(key:)`` report no leader, which is
///   what wakes a waiting elector to try. Only the head can take the key, so terms pass in arrival order.
/// - A graceful handover is one transaction: a leader that releases while this store watches the key deletes its
///   keys and marks the next Baton candidate as leading. Every other store reports the successor as the leader at
///   once; the successor's own store still reports "no leader" to its subscribers until its holder acquires. When
///   that store's watch shows the handover and a read confirms it (a watch whose connection died silently shows an
///   old queue), the acquire writes nothing: the term starts at once and is promised
///   (``Baton/Lease/ttl``) for as long as the candidate's last keep-alive ensures, capped at the ttl asked and
///   given only when more than half of it is left (the store keeps waiting candidates' leases alive every ttl/3);
///   the elector renews it early enough to keep a full term's slack. Otherwise the acquire is a keep-alive (the
///   term's ttl counts from it) and a read, not a write. A successor whose holder never acquires loses the key
///   when its lease runs out, as a stopped leader would.
/// - A term's lease is kept alive only by ``renew(_:ttl:)`` (a keep-alive on etcd's `LeaseKeepAlive` stream),
///   so a holder that stops renewing loses the key after its ttl, as the contract says. A keep-alive answered
///   with a TTL of 0 means etcd dropped the lease: the renew throws `lost` at once, and the key's deletion
///   reaches every ``changes(key:)`` subscriber through the watch.
/// - One lease per candidate and key: an etcd lease has one TTL, and the contract passes a ttl per call. A
///   renew or acquire with a different ttl grants a lease of the new ttl and moves the candidate's keys onto it
///   (their create revision, and so the token and the place in the queue, is kept).
///
/// etcd enforces a minimum lease TTL of 1.5 election timeouts (1.5 s with the default 1 s election timeout);
/// a shorter ttl gets that minimum from etcd, so the store expires the term later than asked, never earlier.
///
/// Keys written by other etcd clients (`etcdctl elect KEY PROPOSAL`) take part in the queue; such a leader is
/// reported with its proposal as both holder and metadata. Metadata is stored as the key's value, so an empty
/// metadata string reads back as nil.
///
/// Rounds are create-if-absent transactions on a key attached to a lease of the retention, decided by
/// ``Baton/RoundRules``; presence is one key per member attached to a lease of its ttl.
public final class EtcdLeaseStore: LeaseStoreDriver {
    /// `etcd`.
    public var storeName: String { "etcd" }
    /// False for now: the store still opens its connections as it is made, so it answers before ``run()``.
    public var needsRun: Bool { false }

    /// Runs until cancelled or shut down gracefully, then closes the store.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    let client: EtcdClient
    let keepAlives: EtcdKeepAliveStream
    let configuration: Configuration
    private let state = Mutex(State())
    private let maintenance: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Who campaigns for a key through this store.
    struct CampaignID: Hashable {
        let key: String
        let holder: String
    }

    /// A candidate of this store: its etcd lease and the create revision of its key.
    struct Campaign {
        var lease: Int64
        var ttlSeconds: Int64
        var revision: Int64
        var leading: Bool
        var metadata: String?
        var lastTry: ContinuousClock.Instant
        var lastKeepAlive: ContinuousClock.Instant
    }

    private struct State {
        var campaigns: [CampaignID: Campaign] = [:]
        var watchers: [String: EtcdElectionWatcher] = [:]
    }

    /// Opens a store for `url` (`etcd://` or `etcds://`). Connections are made on first use.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a URL that is not an etcd URL, takes query items
    ///   other than `ca_file` (TLS only), or whose TLS setup fails.
    public init(url: StoreURL, configuration: Configuration = Configuration()) throws {
        try Self.checkShape(of: url)
        for item in url.queryItems where !(item.name == "ca_file" && url.usesTLS) {
            throw BatonError.invalidArgument(
                "an etcd store URL takes no query item \(item.name) (etcds:// takes ca_file=PATH): \(url)"
            )
        }
        if url.user != nil, url.password == nil {
            throw BatonError.invalidArgument("an etcd store URL with a user needs a password: \(url)")
        }
        let security: EtcdClient.Transport.TransportSecurity
        if url.usesTLS {
            let caFile = url.queryValue("ca_file")
            security = .tls { tls in
                if let caFile { tls.trustRoots = .certificates([.file(path: caFile, format: .pem)]) }
            }
        } else {
            security = .plaintext
        }
        let credentials = url.user.map { (user: $0, password: url.password ?? "") }
        self.client = try EtcdClient(
            hosts: url.hosts.map { ($0.name, $0.port ?? 2379) },
            security: security,
            credentials: credentials,
            requestTimeout: configuration.requestTimeout,
            keepalive: configuration.keepaliveInterval.map { ($0, configuration.keepaliveTimeout) }
        )
        self.keepAlives = EtcdKeepAliveStream(client: client)
        self.configuration = configuration
        // The connection tasks and the queue keeper belong to the store and end in `close()`; a store is a
        // long-lived resource opened by the application, like a connection pool.
        client.start()
        let interval = configuration.maintenanceInterval
        maintenance.withLock { task in
            task = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    guard let self else { return }
                    await self.keepQueueAlive()
                }
            }
        }
    }

    /// Opens a store for the URL string `url`.
    public convenience init(_ url: String, configuration: Configuration = Configuration()) throws {
        try self.init(url: try StoreURL(url), configuration: configuration)
    }

    // MARK: Leases

    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        let id = CampaignID(key: key, holder: holder)
        let seconds = Self.ttlSeconds(ttl)
        if var campaign = state.withLock({ $0.campaigns[id] }) {
            let watcher = state.withLock { state in
                state.campaigns[id]?.lastTry = .now
                return state.watchers[id.key]
            }
            // A waiting candidate that this store's watch shows still behind another needs no request: the store
            // keeps its lease alive, and the watch wakes it when the queue moves.
            if !campaign.leading, let election = watcher?.freshSnapshot,
                election.contains(where: { $0.lease == campaign.lease }), election.first?.lease != campaign.lease
            {
                return .held(by: Self.leaderOrHead(of: election))
            }
            campaign = try await moveIfNeeded(id, campaign, ttlSeconds: seconds)
            let queued = campaign
            if !queued.leading, metadata == queued.metadata {
                // The leader before this candidate may have handed it the key on release (see `release(_:)`): a
                // read checks it (the watch may show it first, but a watch that went silent shows an old queue, so
                // it is never taken on its word). Then the handover alone starts the term; otherwise the candidate
                // takes the lead with a write, if it is the head.
                let shown = watcher?.freshSnapshot?.first.map { $0.lease == queued.lease && !$0.waiting } ?? false
                if shown, let sure = Self.sureTerm(of: queued, asked: ttl), try await handedOver(id, queued) {
                    // Handed over, and the lease was kept alive recently enough: the term starts now, with no
                    // write, for as long as the lease is sure to live (counted from before the read, so the read's
                    // time is not promised); the elector renews it in good time.
                    markLeading(id, queued, metadata: metadata)
                    return .acquired(
                        Lease(key: id.key, holder: id.holder, token: queued.revision, ttl: sure, metadata: metadata))
                }
                async let alive = keepAlive(queued.lease)
                async let handed = handedOver(id, queued)
                let (left, wasHanded) = try await (alive, handed)
                if left > 0, wasHanded {
                    markLeading(id, queued, metadata: metadata)
                    return .acquired(
                        Lease(key: id.key, holder: id.holder, token: queued.revision, ttl: ttl, metadata: metadata))
                }
                if left > 0, let result = try await tryLead(id, queued, ttl: ttl, metadata: metadata) { return result }
            } else {
                // The keep-alive and the attempt go out together: the term's ttl counts from before both.
                async let alive = keepAlive(queued.lease)
                async let attempt = tryLead(id, queued, ttl: ttl, metadata: metadata)
                let (left, result) = try await (alive, attempt)
                if left > 0, let result { return result }
            }
            forget(id, lease: queued.lease)
        }
        return try await join(id, ttl: ttl, ttlSeconds: seconds, metadata: metadata)
    }

    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        let id = CampaignID(key: lease.key, holder: lease.holder)
        guard var campaign = state.withLock({ $0.campaigns[id] }), campaign.revision == lease.token,
            campaign.leading
        else {
            throw BatonError.lost(key: lease.key)
        }
        campaign = try await moveIfNeeded(id, campaign, ttlSeconds: Self.ttlSeconds(ttl))
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
        state.withLock { $0.campaigns[id]?.metadata = lease.metadata }
        var renewed = lease
        renewed.ttl = ttl
        return renewed
    }

    public func release(_ lease: Lease) async throws {
        let id = CampaignID(key: lease.key, holder: lease.holder)
        let campaign: Campaign? = state.withLock { state in
            guard let campaign = state.campaigns[id], campaign.revision == lease.token else { return nil }
            state.campaigns[id] = nil
            return campaign
        }
        if let campaign {
            if try await handOver(lease.key, from: campaign) {
                // The keys are gone. The lease, now holding none, is revoked a moment later, off the successor's
                // path (etcd would apply the revoke before the successor's check), or expires within its ttl if
                // this store closes first.
                let leaseID = campaign.lease
                Task { [weak self] in
                    try? await Task.sleep(for: .milliseconds(500))
                    try? await self?.revoke(leaseID)
                }
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

    public func current(key: String) async throws -> LeaderInfo? {
        return Self.leader(of: try await readElection(key))
    }

    public func changes(key: String) throws -> LeaderChanges {
        let (watcher, id, snapshots) = state.withLock { state in
            let watcher =
                state.watchers[key]
                ?? EtcdElectionWatcher(client: client, prefix: EtcdKeyLayout.electionPrefix(key)) {
                    [weak self] in
                    guard let self else { throw BatonError.storeUnavailable("the etcd store is closed") }
                    return try await self.readElectionAndRevision(key)
                }
            state.watchers[key] = watcher
            // Subscribing under the store's lock: an idle watcher is removed under the same lock.
            let (id, snapshots) = watcher.subscribe()
            return (watcher, id, snapshots)
        }
        return Self.feed(
            snapshots,
            waitingHere: { [weak self] lease in
                self?.state.withLock { state in
                    state.campaigns.contains { $0.key.key == key && $0.value.lease == lease && !$0.value.leading }
                } ?? false
            },
            onTermination: { [weak self] in
                watcher.unsubscribe(id)
                let idle =
                    self?.state.withLock { state -> Bool in
                        guard state.watchers[key] === watcher, watcher.isIdle else { return false }
                        state.watchers[key] = nil
                        return true
                    } ?? true
                if idle { watcher.stop() }
            }
        )
    }

    /// The change feed of one subscriber: yields the leader of each snapshot when it differs from the last one
    /// yielded. One difference from a plain leader feed: when the queue's head is a candidate that has not taken
    /// the lead yet, the feed yields nil again each time that head is a different candidate, so every waiting
    /// elector hears "no leader" once per handover and tries (only the head wins). Without it, a consumer that
    /// missed the short term between two heads would wait forever.
    ///
    /// A head this store knows as one of its own waiting candidates counts as waiting even when the leader before
    /// it marked it leading on release: its holder has not taken the term yet (`waitingHere`), and hearing "no
    /// leader" is what makes it acquire.
    ///
    /// `onTermination` runs when the subscriber stops (or the feed ends).
    static func feed(
        _ snapshots: AsyncStream<EtcdElectionWatcher.Snapshot>,
        waitingHere: @escaping @Sendable (Int64) -> Bool = { _ in false },
        onTermination: @escaping @Sendable () -> Void = {}
    ) -> LeaderChanges {
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let task = Task {
            var last: (leader: LeaderInfo?, waitingHead: Int64?)?
            for await snapshot in snapshots {
                let election: [Candidate]
                switch snapshot {
                case .success(let read): election = read
                case .failure(let error):
                    continuation.finish(throwing: error)
                    return
                }
                let headWaitsHere = election.first?.lease.map(waitingHere) ?? false
                let current = headWaitsHere ? nil : Self.leader(of: election)
                let waitingHead = current == nil ? election.first?.revision : nil
                let changed: Bool
                if let last {
                    changed =
                        (current == nil) != (last.leader == nil)
                        || (current.map { !$0.isSameTerm(as: last.leader) } ?? false)
                        || (current == nil && waitingHead != last.waitingHead)
                } else {
                    changed = true
                }
                if changed {
                    last = (current, waitingHead)
                    continuation.yield(current)
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            task.cancel()
            onTermination()
        }
        return stream
    }

    // MARK: Lifecycle

    public func close() async throws {
        maintenance.withLock { $0?.cancel() }
        let (campaigns, watchers) = state.withLock { state in
            defer {
                state.campaigns = [:]
                state.watchers = [:]
            }
            return (Array(state.campaigns.values), Array(state.watchers.values))
        }
        for watcher in watchers { watcher.stop() }
        keepAlives.close()
        // Leave every queue at once instead of after the ttl.
        for campaign in campaigns { try? await revoke(campaign.lease) }
        await client.close()
    }

    // MARK: Campaigns

    /// The acquire of a holder without a live candidate key: grant a lease, put the key, and lead at once if
    /// the queue was empty, else stay in the queue.
    private func join(_ id: CampaignID, ttl: Duration, ttlSeconds: Int64, metadata: String?) async throws
        -> AcquireResult
    {
        // etcd counts the new lease's TTL from when it gets the grant, after this.
        let granted = ContinuousClock.now
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
        let now = ContinuousClock.now
        var campaign = Campaign(
            lease: leaseID,
            ttlSeconds: ttlSeconds,
            revision: answer.header.revision,
            leading: answer.succeeded,
            metadata: metadata,
            lastTry: now,
            lastKeepAlive: granted
        )
        if answer.succeeded {
            state.withLock { $0.campaigns[id] = campaign }
            return .acquired(
                Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: ttl, metadata: metadata))
        }
        let election = Self.parseElection(id.key, answer.responses.dropFirst())
        guard let mine = election.first(where: { $0.lease == leaseID }) else {
            try? await revoke(leaseID)
            throw BatonError.storeUnavailable("acquire: etcd did not store the candidate key of \(id.holder)")
        }
        campaign.revision = mine.revision
        state.withLock { $0.campaigns[id] = campaign }
        if election.first?.lease == leaseID {
            // The head of the queue already (elections named KEY/... share the prefix but not the queue).
            if let result = try await tryLead(id, campaign, ttl: ttl, metadata: metadata) { return result }
        }
        return .held(by: Self.leaderOrHead(of: election))
    }

    /// The acquire of a holder whose candidate key is in the queue: lead if it is the head (in one transaction
    /// with the check), else answer who is ahead. Nil when the key is gone.
    private func tryLead(_ id: CampaignID, _ campaign: Campaign, ttl: Duration, metadata: String?) async throws
        -> AcquireResult?
    {
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.lease)
        let lead: [Etcdserverpb_RequestOp] = [
            .put(ours, value: Data((metadata ?? "").utf8), keepLease: true),
            .put(
                EtcdKeyLayout.campaignKey(id.key, lease: campaign.lease),
                value: Data((Self.leadingMark + id.holder).utf8),
                keepLease: true
            ),
        ]
        let lease = Lease(key: id.key, holder: id.holder, token: campaign.revision, ttl: ttl, metadata: metadata)
        let answer = try await txn(
            "acquire",
            compare: [
                .createRevision(of: ours, equals: campaign.revision),
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
        guard election.contains(where: { $0.lease == campaign.lease }) else { return nil }
        if election.first?.lease == campaign.lease {
            // Head of this queue, but a key of an election named KEY/... is older: lead with the plain check.
            let confirm = try await txn(
                "acquire",
                compare: [.createRevision(of: ours, equals: campaign.revision)],
                success: lead
            )
            guard confirm.succeeded else { return nil }
            markLeading(id, campaign, metadata: metadata)
            return .acquired(lease)
        }
        return .held(by: Self.leaderOrHead(of: election))
    }

    /// How long the lease of a waiting candidate is sure to live from now (its last keep-alive was sent at
    /// `lastKeepAlive`, and etcd counts the lease's TTL from when it got it), capped at the ttl asked; nil when
    /// less than half of that is left, and a keep-alive should start the term instead.
    static func sureTerm(of campaign: Campaign, asked ttl: Duration, now: ContinuousClock.Instant = .now) -> Duration? {
        let left = campaign.lastKeepAlive + .seconds(campaign.ttlSeconds) - now
        return left > ttl / 2 ? min(ttl, left) : nil
    }

    /// Marks a campaign as leading, and has its key's watcher tell this store's subscribers again: they were
    /// told "no leader" while the campaign waited here, and the watch may have shown its lead before this mark.
    private func markLeading(_ id: CampaignID, _ campaign: Campaign, metadata: String?) {
        let watcher = state.withLock { state -> EtcdElectionWatcher? in
            guard state.campaigns[id]?.lease == campaign.lease else { return nil }
            state.campaigns[id]?.leading = true
            state.campaigns[id]?.metadata = metadata
            return state.watchers[id.key]
        }
        watcher?.republish()
    }

    /// Whether this store's watch of `key` has an up-to-date view of its queue (for tests).
    func hasFreshView(of key: String) -> Bool {
        state.withLock { $0.watchers[key] }?.freshSnapshot != nil
    }

    /// Whether the leader before this waiting candidate handed it the key: its key is the oldest and its campaign
    /// record carries the leading mark. A read, no write.
    private func handedOver(_ id: CampaignID, _ campaign: Campaign) async throws -> Bool {
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.lease)
        let answer = try await txn(
            "acquire",
            compare: [
                .createRevision(of: ours, equals: campaign.revision),
                .noKeys(under: EtcdKeyLayout.electionPrefix(id.key), createdBefore: campaign.revision),
                .value(
                    of: EtcdKeyLayout.campaignKey(id.key, lease: campaign.lease),
                    equals: Data((Self.leadingMark + id.holder).utf8)
                ),
            ],
            success: []
        )
        return answer.succeeded
    }

    /// A graceful handover: the releasing leader deletes its keys and, in the same transaction, marks the next
    /// Baton candidate in the queue as leading, so the successor's acquire is a check rather than a write (the
    /// successor's store keeps reporting it as waiting to its own subscribers until its holder acquires; if the
    /// holder never does, its lease runs out within the ttl as a leader's would). Without a fresh view of the
    /// queue, or with no Baton candidate next, nothing is done here. Returns whether the keys were deleted.
    private func handOver(_ key: String, from campaign: Campaign) async throws -> Bool {
        guard let election = state.withLock({ $0.watchers[key] })?.freshSnapshot,
            election.first?.lease == campaign.lease, election.count > 1,
            let successor = election.dropFirst().first, let holder = successor.holder, successor.waiting,
            let successorLease = successor.lease
        else { return false }
        let ours = EtcdKeyLayout.candidateKey(key, lease: campaign.lease)
        let leave: [Etcdserverpb_RequestOp] = [
            .delete(ours), .delete(EtcdKeyLayout.campaignKey(key, lease: campaign.lease)),
        ]
        _ = try await txn(
            "release",
            compare: [
                .createRevision(of: ours, equals: campaign.revision),
                .createRevision(of: successor.key, equals: successor.revision),
            ],
            success: leave + [
                .put(
                    EtcdKeyLayout.campaignKey(key, lease: successorLease),
                    value: Data((Self.leadingMark + holder).utf8),
                    keepLease: true
                ),
                // Rewritten unchanged, so every watcher of the election sees the handover in one event batch.
                .put(successor.key, value: Data(successor.value.utf8), keepLease: true),
            ],
            failure: leave
        )
        return true
    }

    /// Moves a candidate's keys onto a new lease when the ttl asked for differs from its lease's TTL (the
    /// create revision stays, so the token and the place in the queue stay).
    private func moveIfNeeded(_ id: CampaignID, _ campaign: Campaign, ttlSeconds: Int64) async throws -> Campaign {
        guard ttlSeconds != campaign.ttlSeconds else { return campaign }
        let granted = ContinuousClock.now
        let newLease = try await grant(ttlSeconds)
        let ours = EtcdKeyLayout.candidateKey(id.key, lease: campaign.lease)
        let answer = try await txn(
            "move to a lease of the new ttl",
            compare: [.createRevision(of: ours, equals: campaign.revision)],
            success: [
                .put(ours, lease: newLease),
                .put(EtcdKeyLayout.campaignKey(id.key, lease: campaign.lease), lease: newLease),
            ]
        )
        guard answer.succeeded else {
            try? await revoke(newLease)
            return campaign
        }
        var moved = campaign
        moved.lease = newLease
        moved.ttlSeconds = ttlSeconds
        moved.lastKeepAlive = granted
        let oldLease = campaign.lease
        // The keys keep the old lease's hex in their names; the old lease itself has no keys left.
        state.withLock { $0.campaigns[id] = moved }
        try? await revoke(oldLease)
        return moved
    }

    private func forget(_ id: CampaignID, lease: Int64) {
        state.withLock { state in
            if state.campaigns[id]?.lease == lease { state.campaigns[id] = nil }
        }
    }

    /// Keeps the leases of waiting candidates alive while their holders go on trying, and removes the keys of
    /// those that stopped (see the type's documentation).
    func keepQueueAlive() async {
        let now = ContinuousClock.now
        let (refresh, abandon) = state.withLock { state in
            var refresh: [(CampaignID, Campaign)] = []
            var abandon: [(CampaignID, Campaign)] = []
            for (id, campaign) in state.campaigns where !campaign.leading {
                let ttl = Duration.seconds(campaign.ttlSeconds)
                if state.watchers[id.key] == nil, now - campaign.lastTry > ttl {
                    abandon.append((id, campaign))
                    state.campaigns[id] = nil
                } else if now - campaign.lastKeepAlive >= ttl / 3 {
                    refresh.append((id, campaign))
                }
            }
            return (refresh, abandon)
        }
        for (_, campaign) in abandon { try? await revoke(campaign.lease) }
        for (id, campaign) in refresh {
            guard let left = try? await keepAlive(campaign.lease) else { continue }
            if left > 0 {
                state.withLock { state in
                    if state.campaigns[id]?.lease == campaign.lease { state.campaigns[id]?.lastKeepAlive = now }
                }
            } else {
                forget(id, lease: campaign.lease)
            }
        }
    }

    // MARK: Reading an election

    static let leadingMark = "l\n"
    static let waitingMark = "w\n"

    /// One candidate of an election, as read from etcd.
    struct Candidate {
        var key: Data
        var revision: Int64
        var lease: Int64?
        var value: String
        /// The holder, for Baton candidates (nil for keys other clients wrote).
        var holder: String?
        var waiting: Bool
    }

    /// The reads of an election: its candidate keys by create revision, and Baton's campaign records.
    static func electionReads(_ key: String) -> [Etcdserverpb_RequestOp] {
        [
            .rangeByCreation(EtcdKeyLayout.electionPrefix(key)),
            .rangeByCreation(EtcdKeyLayout.campaignPrefix(key)),
        ]
    }

    func readElection(_ key: String) async throws -> [Candidate] {
        try await readElectionAndRevision(key).election
    }

    /// The election and the store revision it was read at.
    func readElectionAndRevision(_ key: String) async throws -> (election: [Candidate], revision: Int64) {
        let answer = try await txn("read the leader", compare: [], success: Self.electionReads(key))
        return (Self.parseElection(key, answer.responses[...]), answer.header.revision)
    }

    /// The candidates in queue order, from the answers of ``electionReads(_:)``.
    static func parseElection(_ key: String, _ responses: ArraySlice<Etcdserverpb_ResponseOp>) -> [Candidate] {
        guard responses.count >= 2 else { return [] }
        let keys = responses[responses.startIndex].responseRange.kvs
        let records = responses[responses.startIndex + 1].responseRange.kvs
        let electionPrefix = EtcdKeyLayout.electionPrefix(key)
        let campaignPrefix = EtcdKeyLayout.campaignPrefix(key)
        var marks: [String: (holder: String, waiting: Bool)] = [:]
        for record in records {
            guard let name = EtcdKeyLayout.component(of: record.key, after: campaignPrefix) else { continue }
            let text = String(decoding: record.value, as: UTF8.self)
            let waiting = text.hasPrefix(waitingMark)
            guard waiting || text.hasPrefix(leadingMark) else { continue }
            marks[name] = (String(text.dropFirst(2)), waiting)
        }
        return keys.compactMap { kv in
            guard let name = EtcdKeyLayout.component(of: kv.key, after: electionPrefix) else { return nil }
            let mark = marks[name]
            return Candidate(
                key: kv.key,
                revision: kv.createRevision,
                lease: kv.lease == 0 ? nil : kv.lease,
                value: String(decoding: kv.value, as: UTF8.self),
                holder: mark?.holder,
                waiting: mark?.waiting ?? false
            )
        }
        .sorted { $0.revision < $1.revision }
    }

    /// The leader: the head of the queue, unless it is a Baton candidate that has not taken the lead yet.
    static func leader(of election: [Candidate]) -> LeaderInfo? {
        guard let head = election.first, !head.waiting else { return nil }
        return info(head)
    }

    /// Who a refused acquirer is told leads: the head of the queue, taken or about to be.
    static func leaderOrHead(of election: [Candidate]) -> LeaderInfo {
        guard let head = election.first else { return LeaderInfo(holder: "", token: 0) }
        return info(head)
    }

    private static func info(_ candidate: Candidate) -> LeaderInfo {
        LeaderInfo(
            holder: candidate.holder ?? candidate.value,
            token: candidate.revision,
            metadata: candidate.value.isEmpty ? nil : candidate.value
        )
    }

    /// A ttl in etcd's whole seconds, rounded up (the store may expire a term later than asked, never earlier).
    static func ttlSeconds(_ ttl: Duration) -> Int64 {
        let (seconds, attoseconds) = ttl.components
        return max(1, seconds + (attoseconds > 0 ? 1 : 0))
    }
}
