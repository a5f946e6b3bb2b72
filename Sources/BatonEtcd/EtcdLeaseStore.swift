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
///
/// ## Running
///
/// The store is a ServiceLifecycle `Service`, used through a ``Baton/LeaseStore``: making it opens nothing. Its
/// ``run()`` runs the gRPC connections, the upkeep of waiting candidates (every
/// ``Configuration/maintenanceInterval``), each followed key's watch and the keep-alive stream; requests made
/// before it runs wait for it, requests after it ended throw `storeUnavailable`. When `run()` is cancelled or a
/// graceful shutdown begins, the store revokes the leases of its candidates (so their keys leave their queues at
/// once instead of after their ttl), ends every watch (their change feeds end with `storeUnavailable`) and closes
/// its connections before `run()` returns.
///
/// Decisions of time (upkeep, abandoning candidates, promising a handed-over term, the pause before a watch or a
/// request is tried again) follow the clock given to the initializer; the campaign decisions themselves are
/// ``EtcdCampaignMachine``'s.
public final class EtcdLeaseStore: LeaseStoreDriver {
    /// `etcd`.
    public var storeName: String { "etcd" }

    let client: EtcdClient
    let keepAlives: EtcdKeepAliveStream
    let configuration: Configuration
    let clock: BatonClock
    let lifecycle = EtcdLifecycle()
    let state = Mutex(State())

    typealias CampaignID = EtcdCampaignMachine.CampaignID
    typealias Campaign = EtcdCampaignMachine.Campaign

    struct State {
        var machine = EtcdCampaignMachine()
        var watchers: [String: EtcdElectionWatcher] = [:]
    }

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
    ///   - clock: times the upkeep of waiting candidates (their keep-alives, abandoning those whose holders
    ///     stopped trying), the promise of a term handed over on release, and the pauses before a watch or a
    ///     request is tried again (a `ManualClock` in tests). etcd expires leases by its own clock.
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
    }

    /// A store for the URL string `url`; it connects in ``run()``.
    public convenience init(_ url: String, configuration: Configuration = Configuration()) throws {
        try self.init(url: try StoreURL(url), configuration: configuration)
    }

    // MARK: Lifecycle

    /// Runs the store: its connections, the upkeep of waiting candidates, the watches of followed keys and the
    /// keep-alive stream, until the task is cancelled or a graceful shutdown begins; then leaves every queue
    /// (revoking its candidates' leases), ends the watches and closes the connections, and returns.
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

    /// Keeps the waiting candidates' leases alive and abandons those whose holders stopped, every
    /// ``Configuration/maintenanceInterval`` of the store's clock.
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

    /// Leaves every queue at once (instead of after the ttl), ends the watches and the keep-alive stream, and
    /// closes the connections.
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
