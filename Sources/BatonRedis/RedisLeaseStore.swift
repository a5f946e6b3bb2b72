@_spi(BatonStoreKit) import Baton
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A ``Baton/LeaseStore`` on Redis: one node (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS, with
/// `?ca_file=PATH` to trust a private certificate authority), or a Redlock quorum of independent nodes
/// (`redis://h1:p1,h2:p2,h3:p3`).
///
/// Every operation is one Lua script (run with `EVALSHA`, loaded again on `NOSCRIPT`), atomic on the server;
/// terms expire by the server's own clock (`PEXPIRE`). A new term's fencing token is `max(last token + 1, the
/// server's TIME in µs)`, computed in the same script, so tokens keep rising even after the server restarts
/// without persistence and forgets its counters. Release, takeover and new metadata are published on a per-key
/// channel; ``changes(key:)`` listens on one pub/sub connection per node for every key this store watches, and
/// catches expiry by keyspace notifications where the server sends them, and in any case by a timer at the term's
/// remaining time (`PTTL`). Waiting candidates never poll. Every connection that has read nothing for
/// ``Configuration/probeInterval`` sends `PING` and is replaced when the answer does not come within
/// ``Configuration/probeTimeout`` (both lowered to a quarter and a half of the shortest ttl the store is asked for
/// or reads): a connection dropped silently (a NAT or firewall that forgot it) is noticed within about a second,
/// and at most three quarters of the ttl, and the pub/sub connection's subscribers read again and subscribe
/// anew.
///
/// The key layout, readable with `redis-cli` (prefix `baton` by default):
///
/// | key | type | holds |
/// |---|---|---|
/// | `baton:lease:<key>` | hash | `holder`, `token`, `ttl` (ms), `metadata` (absent if none); expires with the term |
/// | `baton:token:<key>` | string | the last fencing token issued for `<key>`; never expires |
/// | `baton:round:<n>:<system>:<round>:winner` | string | the round's winner (`SET NX PX` retention) |
/// | `baton:round:<n>:<system>:<round>:completed` | string | who completed the round; expires with the winner |
/// | `baton:presence:<group>` | sorted set | member → expiry (server Unix ms); expires with its last member |
///
/// `<n>` is the byte length of `<system>`. Changes are published on `baton:changes:<key>`.
///
/// ## Redlock
///
/// With several hosts the store runs Redlock over independent nodes (not replicas of each other): a lease is
/// taken when a majority of nodes grant it within its validity time (the ttl less the time the requests took
/// and an allowance for clock drift); otherwise the partial grants are released at once. Renewal needs a
/// majority too, and release is sent to every node. Redlock's fencing tokens are not those of a consensus
/// protocol, and its safety rests on timing; `RedisLeaseStore+Redlock.swift` says exactly what it guarantees and
/// what it does not (Kleppmann's critique), and what Baton does about it.
///
/// ## Lifecycle
///
/// The store is a ServiceLifecycle `Service`: run it (in a `ServiceGroup`, or with
/// ``Baton/LeaseStore/withRunning(_:)``) through the ``Baton/LeaseStore`` that wraps it. Making it connects
/// nothing. Its connections are made in ``run()``: the first to each node as it starts (so credentials the
/// server refuses end `run()` with ``Baton/BatonError/Code/unauthorized``), the others as operations need them,
/// by connecting work that `run()` owns; an operation asks for a connection and waits for it. When `run()` ends
/// (its task cancelled, or a graceful shutdown) every connection and the pub/sub connections close, and every
/// ``changes(key:)`` sequence ends with ``Baton/BatonError/Code/storeUnavailable``.
public final class RedisLeaseStore: LeaseStoreDriver {
    /// `redis`.
    public var storeName: String { "redis" }

    /// The event loop of the store's command connections: requests run there (see
    /// ``Baton/LeaseStoreDriver/requestExecutor``).
    public var requestExecutor: (any TaskExecutor)? { commandLoop }

    /// True for one server: every wait of a request (a connection being made, a reply) ends when the request is
    /// aborted, so the front runs requests in the caller's task. Redlock's requests keep a task of their own:
    /// their clean-up after a failed quorum must go on past the deadline.
    public var honoursRequestAbort: Bool { nodes.count == 1 }

    let nodes: [RedisNodeClient]
    let layout: RedisKeyLayout
    /// How the store connects and names its keys.
    public let configuration: Configuration
    let signals = ChangeSignals()
    /// The states the queue scripts publish, for the change feeds (one server only).
    let payloads: PushedLeaderStates
    /// The change feeds on one server: one per key.
    let observations = SharedLeaderObservations()
    /// Reads of the server by change feeds on one server (``RedisQueueScripts/look``), for tests.
    let looks = Atomic<Int>(0)
    /// This store's waiting candidates, to take a term handed to one from its message (one server).
    let handedTerms: HandedTerms
    let subscriber: RedisSubscriber
    /// Where every connection is made, in ``run()``.
    let loop = RedisConnectionLoop()
    private let commandLoop: EventLoopTaskExecutor
    /// Times Redlock's validity, the change feeds' expiry timers and reconnection backoff.
    let clock: BatonClock
    /// How the store is named in errors and logs: the URL without its password.
    let name: String
    /// How every connection checks that the server still answers; nil without probes.
    let probe: RESPChannelHandler.Probe?

    /// The number of nodes that must agree: all of one, or a majority of several.
    var quorum: Int { nodes.count / 2 + 1 }

    /// Creates a store for `url`; it connects once it runs (see ``run()``).
    /// - Parameters:
    ///   - url: a `redis://` or `rediss://` URL, with one host or several (Redlock).
    ///   - configuration: pool size, timeouts, probes, key prefix, TLS and Redlock's drift allowance.
    ///   - eventLoopGroup: where connections run; the shared NIO group by default.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a URL that is not a Redis URL, a bad database
    ///   number, an unknown query item, or a TLS setup that fails. Nothing is sent before ``run()``.
    public convenience init(
        url: StoreURL,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        try self.init(url: url, configuration: configuration, eventLoopGroup: eventLoopGroup, clock: ContinuousClock())
    }

    /// Creates a store for `url` whose timing runs on `clock`; it connects once it runs (see ``run()``).
    /// - Parameters:
    ///   - url: a `redis://` or `rediss://` URL, with one host or several (Redlock).
    ///   - configuration: pool size, timeouts, probes, key prefix, TLS and Redlock's drift allowance.
    ///   - eventLoopGroup: where connections run; the shared NIO group by default.
    ///   - clock: times Redlock's validity, the expiry timers of ``changes(key:)`` and the backoff between
    ///     connection attempts (a `ManualClock` in tests). Expiry itself is the server's.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` as ``init(url:configuration:eventLoopGroup:)`` does.
    public init<C: Clock>(
        url: StoreURL,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        clock: C
    ) throws where C.Duration == Duration {
        try Self.checkShape(of: url)
        var database = 0
        if url.path.count > 1 {
            guard let number = Int(url.path.dropFirst()), (0...1_000_000).contains(number) else {
                throw BatonError.invalidArgument("the database of \(url) is not a number")
            }
            database = number
        }
        for item in url.queryItems where !(item.name == "ca_file" && url.usesTLS) {
            throw BatonError.invalidArgument(
                "a redis store URL takes no query item \(item.name) (rediss:// takes ca_file=PATH): \(url)"
            )
        }
        if configuration.keyPrefix.isEmpty {
            throw BatonError.invalidArgument("the Redis key prefix is empty")
        }
        let endpoints = try Self.endpoints(url: url, database: database, configuration: configuration)
        let clock = BatonClock(clock)
        self.clock = clock
        self.configuration = configuration
        self.probe = endpoints.first?.probe
        self.name = url.description
        self.layout = RedisKeyLayout(prefix: configuration.keyPrefix, database: database)
        let loop = loop
        // Every command connection on one loop, where the requests run too: a request and its reply never
        // switch threads.
        let commandLoop = EventLoopTaskExecutor(eventLoopGroup.next())
        self.commandLoop = commandLoop
        self.nodes = endpoints.map {
            RedisNodeClient(
                endpoint: $0,
                group: commandLoop.eventLoop,
                poolSize: configuration.poolSize,
                loop: loop,
                clock: clock
            )
        }
        self.handedTerms = HandedTerms(clock: clock)
        let signals = signals
        let payloads = PushedLeaderStates(watched: { signals.subscribedKeys })
        self.payloads = payloads
        self.subscriber = RedisSubscriber(
            endpoints: endpoints,
            group: eventLoopGroup,
            loop: loop,
            signals: signals,
            payloads: payloads,
            layout: layout
        )
    }

    /// Creates a store for the URL in `string`. See ``init(url:configuration:eventLoopGroup:clock:)``.
    public convenience init<C: Clock>(
        _ string: String,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        clock: C = ContinuousClock()
    ) throws where C.Duration == Duration {
        try self.init(url: StoreURL(string), configuration: configuration, eventLoopGroup: eventLoopGroup, clock: clock)
    }

    /// One endpoint per host of `url`, sharing one TLS context and one probe.
    private static func endpoints(url: StoreURL, database: Int, configuration: Configuration) throws
        -> [RedisEndpoint]
    {
        var tls: NIOSSLContext?
        if url.usesTLS {
            do {
                var tlsConfiguration = configuration.tls ?? .makeClientConfiguration()
                if let file = url.queryValue("ca_file") { tlsConfiguration.trustRoots = .file(file) }
                tls = try NIOSSLContext(configuration: tlsConfiguration)
            } catch {
                throw BatonError.invalidArgument("cannot set up TLS for \(url): \(error)")
            }
        }
        // One probe for every connection, lowered to the shortest ttl in use (see `RESPChannelHandler.Probe`).
        let probe = configuration.probeInterval.map { interval in
            RESPChannelHandler.Probe(
                interval: .nanoseconds(interval.batonNanoseconds),
                timeout: .nanoseconds(configuration.probeTimeout.batonNanoseconds)
            )
        }
        return url.hosts.map { host in
            RedisEndpoint(
                host: host.name,
                port: host.port ?? 6379,
                user: url.user,
                password: url.password,
                database: database,
                tls: tls,
                connectTimeout: configuration.connectTimeout,
                commandTimeout: configuration.commandTimeout,
                probe: probe
            )
        }
    }

    // MARK: Leases

    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: false)
    }

    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        probe?.adapt(toTTL: ttl)
        if nodes.count > 1 { return try await redlockRenew(lease, ttl: ttl) }
        handedTerms.saw(key: lease.key, token: lease.token)
        guard try await renew(on: nodes[0], lease, ttl: ttl) else { throw BatonError.lost(key: lease.key) }
        var renewed = lease
        renewed.ttl = ttl
        return renewed
    }

    public func release(_ lease: Lease) async throws {
        if nodes.count > 1 { return try await redlockRelease(lease) }
        try await queuedRelease(lease)
    }

    public func current(key: String) async throws -> LeaderInfo? {
        if nodes.count > 1 { return try await redlockCurrent(key: key) }
        return try await current(on: nodes[0], key: key)
    }

    public func changes(key: String) throws -> LeaderChanges {
        try LeaderChanges.observing { try observe(key: key, $0) }
    }

    public func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        if nodes.count == 1 {
            // One feed per key, whatever the number of electors following it in this process.
            return try observations.observe(key, observer) { [self] observer in
                LeaderChangeFeed.observe(
                    clock: clock, pollInterval: nil, signals: self.signals.subscribe(key), read: queueFeedRead(key),
                    observer: observer)
            }
        }
        let signals = signals.subscribe(key)
        let needed = quorum
        let read = { @Sendable [self] () async throws -> LeaderInfo? in
            // Subscribed before reading, so a change right after the read is pushed, not missed. The feed's timer
            // at the term's remaining time stays armed even where the servers push expiry (keyspace
            // notifications): an `expired` event lost with a connection that died silently must not leave waiting
            // candidates asleep.
            _ = try await subscriber.ensureSubscribed(key, needed: needed)
            let leader = try await current(key: key)
            // A follower that never acquires still probes within its leader's ttl.
            if let ttl = leader?.ttl { probe?.adapt(toTTL: ttl) }
            return leader
        }
        return LeaderChangeFeed.observe(
            clock: clock, pollInterval: nil, signals: signals, read: read, observer: observer)
    }

    // MARK: Rounds

    public func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult
    {
        let reply = try await nodes[0].run(
            RedisScripts.claim,
            keys: [layout.roundWinner(system, round)],
            arguments: [candidate, String(retention.batonMilliseconds)]
        )
        guard let winner = reply.string else { throw unexpected(reply, "claim") }
        return winner == candidate ? .won : .lost(winner: winner)
    }

    public func winner(system: String, round: String) async throws -> String? {
        return try await get(layout.roundWinner(system, round))
    }

    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        var named = "0"
        if case .candidate = completer { named = "1" }
        let reply = try await nodes[0].run(
            RedisScripts.complete,
            keys: [layout.roundWinner(system, round), layout.roundCompleted(system, round)],
            arguments: [completer.identity, named, String(retention.batonMilliseconds)]
        )
        switch reply.elements?.first?.int64 {
        case 1: return
        case 2:
            guard let by = reply.elements?.dropFirst().first?.string else { throw unexpected(reply, "complete") }
            throw BatonError.alreadyCompleted(by: by, system: system, round: round)
        case 3: throw BatonError.notWinner(candidate: completer.identity, system: system, round: round)
        default: throw unexpected(reply, "complete")
        }
    }

    public func completion(system: String, round: String) async throws -> String? {
        return try await get(layout.roundCompleted(system, round))
    }

    // MARK: Presence

    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        _ = try await nodes[0].run(
            RedisScripts.heartbeat,
            keys: [layout.presence(group)],
            arguments: [member, String(ttl.batonMilliseconds)]
        )
    }

    public func leave(group: String, member: String) async throws {
        let reply = try await nodes[0].send(RESPCommand("ZREM", layout.presence(group), member))
        if let message = reply.errorMessage { throw BatonError.storeUnavailable("\(name) failed ZREM: \(message)") }
    }

    public func members(group: String) async throws -> [String] {
        let reply = try await nodes[0].run(RedisScripts.members, keys: [layout.presence(group)], arguments: [])
        guard let elements = reply.elements else { throw unexpected(reply, "members") }
        return try elements.map { element in
            guard let member = element.string else { throw unexpected(reply, "members") }
            return member
        }.sorted()
    }

    // MARK: One node

    /// What one node answered to an acquire.
    enum NodeAcquire {
        case granted(FencingToken)
        case held(LeaderInfo)
        case tokenTooLow(FencingToken)
    }

    func acquire(
        on node: RedisNodeClient,
        key: String,
        holder: String,
        ttl: Duration,
        metadata: String?,
        token: FencingToken
    ) async throws -> NodeAcquire {
        let reply = try await node.run(
            RedisScripts.acquire,
            keys: [layout.lease(key), layout.token(key)],
            arguments: [
                holder, String(ttl.batonMilliseconds), metadata == nil ? "0" : "1", metadata ?? "",
                layout.changeChannel(key), String(token),
            ]
        )
        guard let parts = reply.elements, let status = parts.first?.int64 else { throw unexpected(reply, "acquire") }
        switch status {
        case 1:
            guard parts.count == 2, let token = parts[1].int64 else { throw unexpected(reply, "acquire") }
            return .granted(token)
        case -1:
            guard parts.count == 2, let counter = parts[1].int64 else { throw unexpected(reply, "acquire") }
            return .tokenTooLow(counter)
        default:
            guard let leader = leaderInfo(Array(parts.dropFirst())) else { throw unexpected(reply, "acquire") }
            return .held(leader)
        }
    }

    func renew(on node: RedisNodeClient, _ lease: Lease, ttl: Duration) async throws -> Bool {
        let reply = try await node.run(
            RedisScripts.renew,
            keys: [layout.lease(lease.key)],
            arguments: [
                lease.holder, String(lease.token), String(ttl.batonMilliseconds), lease.metadata == nil ? "0" : "1",
                lease.metadata ?? "", layout.changeChannel(lease.key),
            ]
        )
        guard let result = reply.int64 else { throw unexpected(reply, "renew") }
        return result == 1
    }

    func release(on node: RedisNodeClient, _ lease: Lease) async throws -> Bool {
        let reply = try await node.run(
            RedisScripts.release,
            keys: [layout.lease(lease.key)],
            arguments: [lease.holder, String(lease.token), layout.changeChannel(lease.key)]
        )
        guard let result = reply.int64 else { throw unexpected(reply, "release") }
        return result == 1
    }

    func current(on node: RedisNodeClient, key: String) async throws -> LeaderInfo? {
        let reply = try await node.run(RedisScripts.current, keys: [layout.lease(key)], arguments: [])
        if reply.isNull || reply == .boolean(false) { return nil }
        guard let parts = reply.elements, let leader = leaderInfo(parts) else { throw unexpected(reply, "current") }
        // PTTL is -2 if the key expired between the read and now, which the script's atomicity rules out.
        return leader.remaining.map { $0 > .zero } ?? true ? leader : nil
    }

    /// `{holder, token, has metadata, metadata, ttl ms, pttl}` as a leader.
    func leaderInfo(_ parts: [RESPValue]) -> LeaderInfo? {
        guard parts.count == 6, let holder = parts[0].string, let token = parts[1].int64,
            let hasMetadata = parts[2].int64, let ttl = parts[4].int64, let pttl = parts[5].int64
        else { return nil }
        return LeaderInfo(
            holder: holder,
            token: token,
            metadata: hasMetadata == 1 ? (parts[3].string ?? "") : nil,
            ttl: ttl > 0 ? .milliseconds(ttl) : nil,
            remaining: pttl >= 0 ? .milliseconds(pttl) : nil
        )
    }

    private func get(_ redisKey: String) async throws -> String? {
        let reply = try await nodes[0].send(RESPCommand("GET", redisKey))
        if let message = reply.errorMessage { throw BatonError.storeUnavailable("\(name) failed GET: \(message)") }
        if reply.isNull { return nil }
        guard let value = reply.string else { throw unexpected(reply, "GET") }
        return value
    }

    func unexpected(_ reply: RESPValue, _ operation: String) -> BatonError {
        .storeUnavailable("\(name) answered \(operation) with an unexpected reply")
    }
}
