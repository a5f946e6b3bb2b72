@_spi(BatonStoreKit) import Baton
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
/// - **A term is etcd's, not this instance's.** Every candidate has an etcd lease of its own, granted with the
///   ttl asked (rounded up to whole seconds, as etcd counts). Its key names the lease it joined with, its create
///   revision is its token, and its campaign record names its holder, so any store instance on the same etcd (a
///   `baton serve` replica, a restarted process) finds a term from its key, holder and token: a renew through
///   any instance sends one keep-alive of the term's lease together with a transaction that checks the key is
///   still that term's and on that lease; a release through any instance deletes the term's keys (compare and
///   delete) and revokes its lease; the holder acquiring again through any instance renews its term (same token)
///   instead of queueing behind itself. What an instance remembers of a candidate only saves reads; etcd is
///   asked again whenever it disagrees.
/// - The first acquire by a holder grants the lease and puts the holder's candidate key. With no candidate before
///   it, the holder leads at once. Otherwise it is refused with ``Baton/AcquireResult/held(by:)``, and then:
///   an acquire that does not wait revokes the lease before it answers, so a plain refusal (an HTTP 409 without
///   `wait_ms`) leaves no trace; a *waiting* acquire
///   (``acquire(key:holder:ttl:metadata:waiting:)``, as electors and long polls make) keeps the key in the
///   queue, marked waiting.
/// - **A waiting candidate's lease lives while its holder asks.** Each waiting acquire, through any instance,
///   sends one keep-alive of it (electors and long polls ask every third of the ttl while they wait). Nothing
///   else keeps it alive — not the instance that made it, not anyone's watch of the key — so a candidate whose
///   holder stops asking leaves the queue within its ttl, by etcd's own expiry.
/// - When the keys before it are gone, a waiting candidate is at the head of the queue but does not lead until
///   its holder acquires again: until then ``current(key:)`` reports no leader, and ``changes(key:)`` reports
///   that candidate — the next leader. Only its holder's elector (or HTTP long poll), seeing its own holder named,
///   acquires; the others, seeing someone else, keep waiting, so a release wakes one candidate, not the queue.
///   Only the head can take the key, so terms pass in arrival order.
/// - A graceful handover is one transaction: a leader that releases while this store watches the key deletes its
///   keys and marks the next Baton candidate as leading (a store watches the keys it leads, up to
///   ``maximumHeldWatches`` of them, although their holders' change feeds stop; for other keys a release first
///   reads the queue, a serializable read). Every store reports the successor as the leader at
///   once, and its holder, seeing itself named, acquires. When that store's watch shows the handover, the
///   acquire sends nothing (where its holder may also ask through other instances,
///   `HandedTerms.holderMayAskElsewhere`, a linearizable read confirms the handover first: the holder may have
///   taken the term there and released it while this watch lags): the term starts at once and is promised (``Baton/Lease/ttl``) for as long as the candidate's last keep-alive through this
///   store ensures, capped at the ttl asked and given only when more than half of it is left. Otherwise the
///   acquire is a keep-alive (the term's ttl counts from it) and a read, not a write. A successor whose holder
///   never acquires loses the key when its lease runs out, as a stopped leader would.
/// - A term's lease is kept alive only by ``renew(_:ttl:)`` and by its holder acquiring again, so a holder that
///   stops renewing loses the key after its ttl, as the contract says. A keep-alive answered with a TTL of 0
///   means etcd dropped the lease: the renew throws `lost`, and the key's deletion reaches every
///   ``changes(key:)`` subscriber through the watch.
/// - **Terms that start at once share a lease.** A holder that finds the key free puts its keys on the store's
///   session lease of its ttl (``EtcdSessionLeases``: one lease per ttl, as etcd's `concurrency.Session` shares
///   one among a client's keys), so 10,000 leaders in one process cost one lease. Renews share keep-alive
///   messages (one per round trip, each renew waiting for one sent after it asked) and check transactions (up to
///   128 terms read in one). The store ends a term on its session lease whose holder has not asked for its ttl,
///   with a compare-and-delete (the lease lives on for the other terms); etcd expires them all if the process
///   dies. A term renewed through another instance moves onto that instance's session lease.
/// - A waiting candidate has a lease of its own. An etcd lease has one TTL, and the contract passes a ttl per call:
///   a renew or acquire with a different ttl moves the candidate's keys onto a lease of the new ttl (the session
///   lease for a term) and keeps their names and create revision, and so the token and the place in the queue.
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
///
/// ## Running
///
/// The store is a ServiceLifecycle `Service`, used through a ``Baton/LeaseStore``: making it opens nothing. Its
/// ``run()`` runs the gRPC connections, the upkeep (every ``Configuration/maintenanceInterval``), each followed
/// key's watch and the keep-alive stream; requests made before it runs wait for it, requests after it ended throw
/// `storeUnavailable`. When `run()` is cancelled or a graceful shutdown begins, the store revokes the leases of
/// the waiting candidates that asked through it (so their keys leave their queues at once instead of after their
/// ttl) — but never a term's lease, which its holder may go on renewing through another instance — ends every
/// watch (their change feeds end with `storeUnavailable`) and closes its connections before `run()` returns.
///
/// Decisions of time (upkeep, promising a handed-over term, the pause before a watch or a request is tried
/// again) follow the clock given to the initializer; the campaign decisions themselves are
/// ``EtcdCampaignMachine``'s.
public final class EtcdLeaseStore: LeaseStoreDriver {
    /// `etcd`.
    public var storeName: String { "etcd" }

    let client: EtcdClient
    let keepAlives: EtcdKeepAliveStream
    /// The leases shared by the terms that start at once through this store, one per ttl.
    let sessionLeases = EtcdSessionLeases()
    /// Checks that terms are still theirs, many in one transaction (a renew's check).
    let termChecks = RequestBatcher<TermCheck>(maxInFlight: 2, maxBatch: 128)
    let configuration: Configuration
    let clock: BatonClock
    let lifecycle = EtcdLifecycle()
    let state = Mutex(State())

    typealias CampaignID = EtcdCampaignMachine.CampaignID
    typealias Campaign = EtcdCampaignMachine.Campaign

    struct State {
        var machine = EtcdCampaignMachine()
        var watchers: [String: EtcdElectionWatcher] = [:]
        /// The watches held for keys this store leads (see ``EtcdLeaseStore/maximumHeldWatches``): the watcher
        /// and the holder's id in it.
        var heldWatches: [String: (watcher: EtcdElectionWatcher, id: Int)] = [:]
        /// ``EtcdLeaseStore/maximumHeldWatches``, unless a test set another.
        var heldWatchLimit = EtcdLeaseStore.maximumHeldWatches
    }

    /// The most keys this store watches while it leads them (their holders' change feeds stop), so that a
    /// release hands the key on without reading the queue first. Beyond it a release reads the queue: a process
    /// with thousands of terms keeps no watch per term.
    static let maximumHeldWatches = 64

    /// A store for `url` (`etcd://` or `etcds://`); it connects in ``run()``.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a URL that is not an etcd URL, takes query items
    ///   other than `ca_file` (TLS only), or whose TLS setup fails.
    public convenience init(url: StoreURL, configuration: Configuration = Configuration()) throws {
        try self.init(url: url, configuration: configuration, clock: ContinuousClock())
    }

    /// A store for `url` (`etcd://` or `etcds://`) whose decisions of time follow `clock`; it connects in
    /// ``run()``.
    /// - Parameters:
    ///   - url: the endpoints, credentials and TLS settings.
    ///   - configuration: the upkeep interval and the connections' keep-alive pings.
    ///   - clock: times the upkeep (revoking the leases of handovers, dropping the records of waiting candidates
    ///     whose holders stopped asking), the promise of a term handed over on release, and the pauses before a
    ///     watch or a request is tried again (a `ManualClock` in tests). etcd expires leases by its own clock.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a URL that is not an etcd URL, takes query items
    ///   other than `ca_file` (TLS only), or whose TLS setup fails.
    public init<C: Clock>(url: StoreURL, configuration: Configuration = Configuration(), clock: C) throws
    where C.Duration == Duration {
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
        self.clock = BatonClock(clock)
        self.client = try EtcdClient(
            hosts: url.hosts.map { ($0.name, $0.port ?? 2379) },
            security: security,
            credentials: credentials,
            clock: self.clock,
            keepalive: configuration.keepaliveInterval.map { ($0, configuration.keepaliveTimeout) }
        )
        self.keepAlives = EtcdKeepAliveStream(client: client, lifecycle: lifecycle)
        self.configuration = configuration
        _ = Self.runtimeWarmUp
    }

    /// A throwaway campaign taken once per process through a handover shown by the watch, so that the Swift
    /// runtime's first-time work for the types a successor's acquire uses (generic metadata, conformances, the
    /// task-local that says whether the holder asks elsewhere) is not done on an election's path, where a release
    /// has woken every waiting process at once. True when the warm-up went the way of a real handover.
    static let runtimeWarmUp: Bool = {
        var machine = EtcdCampaignMachine()
        let id = EtcdCampaignMachine.CampaignID(key: "k", holder: "b")
        machine.joined(
            id,
            EtcdCampaignMachine.Campaign(
                lease: 2, name: 2, ttlSeconds: 10, revision: 5, leading: false, metadata: nil, lastTry: .zero,
                lastKeepAlive: .zero))
        let view = [
            Candidate(key: Data("k/2".utf8), revision: 5, lease: 2, name: 2, value: "", holder: "b", waiting: false)
        ]
        guard case .campaign(let campaign, _) = machine.startAcquire(id, ttl: .seconds(10), view: view, now: .zero)
        else { return false }
        let plan = EtcdCampaignMachine.attempt(
            campaign, ttl: .seconds(10), metadata: nil, view: view, now: .zero,
            holderMayAskElsewhere: HandedTerms.holderMayAskElsewhere)
        guard case .takeHandover(let sure) = plan, machine.markLeading(id, lease: 2, metadata: nil) else {
            return false
        }
        let result = AcquireResult.acquired(Lease(key: "k", holder: "b", token: 5, ttl: sure, metadata: nil))
        // The new leader's store holds the key's watch (a subscriber more, a held watch): the dictionaries it grows.
        var subscribers: [Int: EtcdElectionWatcher.Subscriber] = [:]
        for id in 0..<3 { subscribers[id] = .holder }
        let held = [String: (watcher: EtcdElectionWatcher, id: Int)](minimumCapacity: 4)
        // The watch answer of a handover: a deletion and a rewrite (a waiting process may have seen neither yet).
        let handover = Etcdserverpb_WatchResponse.with {
            $0.events = [
                .with {
                    $0.type = .delete
                    $0.kv = .with { $0.key = Data("k/1".utf8) }
                },
                .with {
                    $0.type = .put
                    $0.kv = .with {
                        $0.key = Data("k/2".utf8)
                        $0.createRevision = 5
                        $0.lease = 2
                    }
                },
            ]
        }
        let decoded = (try? handover.serializedBytes() as [UInt8])
            .flatMap { try? Etcdserverpb_WatchResponse(serializedBytes: $0) }
        return result.lease != nil && subscribers.count + held.count == 3 && decoded?.events.count == 2
    }()

    /// A store for the URL string `url`; it connects in ``run()``.
    public convenience init(_ url: String, configuration: Configuration = Configuration()) throws {
        try self.init(url: try StoreURL(url), configuration: configuration)
    }

    // MARK: Lifecycle

    /// Runs the store: its connections, the upkeep, the watches of followed keys and the keep-alive stream, until
    /// the task is cancelled or a graceful shutdown begins; then takes the waiting candidates that asked through it
    /// out of their queues (revoking their leases, never a term's), ends the watches and closes the connections,
    /// and returns.
    /// - Throws: ``Baton/BatonError`` `unauthorized` if etcd refuses the URL's credentials (the store then
    ///   closes); `invalidArgument` if the store ran before (a store runs once). An etcd that cannot be reached
    ///   is not an error here: requests fail until it answers.
    public func run() async throws {
        try lifecycle.start()
        // The work runs in a task that `run()` awaits to its end, not in a child task: cancelling `run()` asks
        // the store to close, and the close still revokes its leases over the connections before it shuts them
        // down (a child task would have its connections cancelled under it).
        let work = Task { await self.serve() }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await work.value
            } onGracefulShutdown: {
                self.lifecycle.requestStop()
            }
        } onCancel: {
            self.lifecycle.requestStop()
        }
        if let failure = lifecycle.failure { throw failure }
    }

    /// The store's work, each part a child task, until a stop is requested and the store has closed.
    private func serve() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.client.runConnections() }
            group.addTask { await self.upkeepLoop() }
            group.addTask {
                do {
                    try await self.client.signIn()
                } catch let error as BatonError where error.code == .unauthorized {
                    self.lifecycle.fail(error)
                } catch {
                    // Unreachable for now: the next request signs in.
                }
            }
            group.addTask {
                await self.lifecycle.stopRequested()
                await self.close()
            }
            // Work that parts of the store spawn (watches, the keep-alive stream) runs here, until `close()` ends
            // the lifecycle.
            for await job in lifecycle.jobs { group.addTask { await job() } }
            group.cancelAll()
        }
    }

    /// Revokes the leases of handovers whose delay is over and drops the records of waiting candidates whose
    /// holders stopped asking here, every ``Configuration/maintenanceInterval`` of the store's clock.
    private func upkeepLoop() async {
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: configuration.maintenanceInterval)
            } catch {
                return
            }
            await upkeep()
        }
    }

    /// Takes the waiting candidates that asked through this store out of their queues at once (instead of after
    /// their ttl), ends the watches and the keep-alive stream, and closes the connections. Terms stay: they are
    /// the store's, not this instance's.
    private func close() async {
        let (leases, watchers) = state.withLock { state in
            defer { state.watchers = [:] }
            return (state.machine.close(), Array(state.watchers.values))
        }
        for watcher in watchers { watcher.stop() }
        keepAlives.close()
        await withDiscardingTaskGroup { group in
            for lease in leases { group.addTask { try? await self.revoke(lease) } }
        }
        lifecycle.end()
        client.close()
    }
}
