@_spi(BatonStoreKit) import Baton
import NIOCore
import Synchronization

/// The one pub/sub connection per node that a ``RedisLeaseStore`` keeps for all its ``LeaseStore/changes(key:)``
/// sequences, whatever the number of keys watched.
///
/// For each watched key it subscribes to the key's change channel (where acquire, renew with new metadata,
/// release and takeover publish) and to the key's keyspace channel (where the server announces expiry if
/// `notify-keyspace-events` includes `Kx` or `Ex`; the change feed's timer at the term's remaining time catches
/// expiry in any case). Each message is recorded in `PushedLeaderStates` (with the state it carries, if any) and
/// wakes the key's subscribers in ``ChangeSignals``, which then use that state or read the key.
/// Channels of keys no longer watched are unsubscribed lazily, when later keys are subscribed. When the
/// connection drops (or stops answering the probe's `PING`, see ``RESPChannelHandler/Probe``) every subscriber is
/// woken, so it reads again (and subscribes again through a new connection, or ends with the store's error).
final class RedisSubscriber: Sendable {
    private struct Node {
        var connection: RedisConnection?
        var connecting: RedisPending<RedisConnection>?
        /// Keys whose SUBSCRIBE the server has confirmed on `connection`.
        var confirmed: Set<String> = []
        /// Keys subscribed since `confirmed` was last cleared of keys nobody watches any more.
        var subscribedSinceSweep = 0
        /// Whether the server publishes expiry on keyspace channels (`notify-keyspace-events` has `K` and `x`
        /// or `A`), as read when the connection was made.
        var expiryIsPushed = false
    }

    private struct State {
        var nodes: [Node]
        var closed = false
    }

    private let endpoints: [RedisEndpoint]
    private let group: any EventLoopGroup
    private let signals: ChangeSignals
    private let payloads: PushedLeaderStates
    private let layout: RedisKeyLayout
    private let loop: RedisConnectionLoop
    private let state: Mutex<State>

    init(
        endpoints: [RedisEndpoint],
        group: any EventLoopGroup,
        loop: RedisConnectionLoop,
        signals: ChangeSignals,
        payloads: PushedLeaderStates,
        layout: RedisKeyLayout
    ) {
        self.payloads = payloads
        self.endpoints = endpoints
        self.group = group
        self.loop = loop
        self.signals = signals
        self.layout = layout
        self.state = Mutex(State(nodes: Array(repeating: Node(), count: endpoints.count)))
    }

    /// Returns once `key`'s channels are subscribed on at least `needed` nodes (so no change published after this
    /// returns is missed there).
    /// - Returns: whether every subscribed node also pushes the key's expiry (keyspace notifications). Readers
    ///   keep their expiry timers armed all the same: an event can be lost with a connection.
    /// - Throws: ``BatonError`` `storeUnavailable` or `timeout` if fewer nodes could be reached.
    func ensureSubscribed(_ key: String, needed: Int) async throws -> Bool {
        var successes = 0
        var expiryIsPushed = true
        var lastError: (any Error)?
        await withThrowingTaskGroup(of: Bool.self) { group in
            for index in endpoints.indices {
                group.addTask { try await self.subscribe(key, node: index) }
            }
            while let result = await group.nextResult() {
                switch result {
                case .success(let pushed):
                    successes += 1
                    expiryIsPushed = expiryIsPushed && pushed
                case .failure(let error):
                    lastError = error
                }
            }
        }
        if successes < needed {
            throw lastError ?? BatonError.storeUnavailable("cannot subscribe to changes of \(key)")
        }
        return expiryIsPushed
    }

    /// Subscribes `key` on one node; returns whether that node pushes expiry.
    private func subscribe(_ key: String, node index: Int) async throws -> Bool {
        let connection = try await connection(node: index)
        // Every read of a watched key comes here (the feed reads on each change), so the common case, a key
        // already subscribed, must cost the same whatever the number of keys.
        enum Step {
            case confirmed(expiryIsPushed: Bool)
            case subscribe(unsubscribing: Set<String>)
        }
        let step = state.withLock { state -> Step in
            if state.nodes[index].connection === connection, state.nodes[index].confirmed.contains(key) {
                return .confirmed(expiryIsPushed: state.nodes[index].expiryIsPushed)
            }
            return .subscribe(unsubscribing: takeStale(&state.nodes[index], except: key))
        }
        switch step {
        case .confirmed(let pushed):
            return pushed
        case .subscribe(let stale) where !stale.isEmpty:
            connection.sendWithoutReply(RESPCommand("UNSUBSCRIBE", stale.flatMap(channels)))
        case .subscribe:
            break
        }
        connection.sendWithoutReply(RESPCommand("SUBSCRIBE", channels(of: key)))
        // Replies come in order: once PING is answered, the SUBSCRIBE before it is in effect.
        let pong = try await connection.send(RESPCommand("PING"))
        if let message = pong.errorMessage {
            throw BatonError.storeUnavailable("\(connection.endpoint) refused SUBSCRIBE: \(message)")
        }
        return state.withLock { state in
            guard state.nodes[index].connection === connection else { return false }
            state.nodes[index].confirmed.insert(key)
            return state.nodes[index].expiryIsPushed
        }
    }

    /// Takes out of `node.confirmed` the keys that nobody watches any more (but `key`), to be unsubscribed.
    ///
    /// Finding them is a pass over every watched key, so it is made only once the node has subscribed as many
    /// new keys as a quarter of those it has confirmed: on average a constant cost per subscription, where a pass
    /// per subscription made subscribing N keys cost N² (10,000 keys: 10⁸ string hashes under this lock).
    private func takeStale(_ node: inout Node, except key: String) -> Set<String> {
        node.subscribedSinceSweep += 1
        guard node.subscribedSinceSweep > node.confirmed.count / 4 else { return [] }
        node.subscribedSinceSweep = 0
        let watched = Set(signals.subscribedKeys)
        let stale = node.confirmed.filter { $0 != key && !watched.contains($0) }
        node.confirmed.subtract(stale)
        return stale
    }

    private func channels(of key: String) -> [String] {
        [layout.changeChannel(key), layout.keyspaceChannel(key)]
    }

    private func connection(node index: Int) async throws -> RedisConnection {
        enum Step {
            case ready(RedisConnection)
            case wait(RedisPending<RedisConnection>, submit: Bool)
        }
        let step = try state.withLock { state throws(BatonError) -> Step in
            if state.closed { throw closedError }
            if let connection = state.nodes[index].connection, connection.isActive { return .ready(connection) }
            if let pending = state.nodes[index].connecting { return .wait(pending, submit: false) }
            let pending = RedisPending<RedisConnection>()
            state.nodes[index].connecting = pending
            return .wait(pending, submit: true)
        }
        switch step {
        case .ready(let connection):
            return connection
        case .wait(let pending, let submit):
            if submit, !loop.submit({ [self] in await connect(node: index, pending) }) {
                state.withLock { state in
                    if state.nodes[index].connecting === pending { state.nodes[index].connecting = nil }
                }
                pending.resolve(.failure(closedError))
            }
            return try await pending.value()
        }
    }

    private var closedError: BatonError {
        .storeUnavailable("the Redis store is closed (its run() has returned)")
    }

    /// Connects the pub/sub connection of node `index`: the loop's work, in the store's `run()`.
    private func connect(node index: Int, _ pending: RedisPending<RedisConnection>) async {
        do {
            let connection = try await RedisConnection.connect(
                to: endpoints[index],
                group: group,
                subscriber: true,
                onPush: { [weak self] push in self?.received(push) }
            )
            let pushed = await Self.expiryIsPushed(on: connection)
            if connected(connection, node: index, expiryIsPushed: pushed) {
                pending.resolve(.success(connection))
            } else {
                pending.resolve(.failure(closedError))
            }
        } catch {
            state.withLock { $0.nodes[index].connecting = nil }
            pending.resolve(.failure(error is CancellationError ? closedError : error))
        }
    }

    /// Whether the server sends keyspace events for expiry; false if CONFIG is not allowed.
    private static func expiryIsPushed(on connection: RedisConnection) async -> Bool {
        guard let reply = try? await connection.send(RESPCommand("CONFIG", "GET", "notify-keyspace-events")) else {
            return false
        }
        let value: String?
        switch reply {
        case .map(let pairs): value = pairs.first?.value.string
        case .array(let parts) where parts.count == 2: value = parts[1].string
        default: value = nil
        }
        guard let flags = value else { return false }
        return flags.contains("K") && (flags.contains("x") || flags.contains("A"))
    }

    private func connected(_ connection: RedisConnection, node index: Int, expiryIsPushed: Bool) -> Bool {
        let keep = state.withLock { state -> Bool in
            state.nodes[index].connecting = nil
            guard !state.closed else { return false }
            state.nodes[index] = Node(connection: connection, expiryIsPushed: expiryIsPushed)
            return true
        }
        guard keep else {
            connection.channel.close(promise: nil)
            return false
        }
        connection.channel.closeFuture.whenComplete { [weak self] _ in
            guard let self else { return }
            let dropped = state.withLock { state -> Bool in
                guard state.nodes[index].connection === connection else { return false }
                state.nodes[index].connection = nil
                state.nodes[index].confirmed = []
                return true
            }
            // Messages may have been missed: everyone reads again (and subscribes again), from the server, not
            // from a message that a lost one would have followed.
            if dropped {
                payloads.forgetAll()
                signals.notifyAll()
            }
        }
        return true
    }

    private func received(_ push: RESPValue) {
        guard let parts = push.elements, parts.count >= 3, let kind = parts[0].string?.lowercased(),
            kind == "message", let channel = parts[1].string, let (key, keyspace) = layout.key(ofChannel: channel)
        else { return }
        // Of the keyspace events only expiry matters: the others (HSET, PEXPIRE on every renew, where the server
        // sends them) change nothing a follower sees, and the store publishes its own changes.
        if keyspace && parts[2].string != "expired" { return }
        payloads.record(key, keyspace ? nil : parts[2].string.flatMap(RedisFeedPayload.parse))
        signals.notify(key)
    }

    /// The pub/sub connections open now.
    var openConnections: [RedisConnection] {
        state.withLock { state in state.nodes.compactMap(\.connection).filter(\.isActive) }
    }

    /// Closes the connections; ``ensureSubscribed(_:needed:)`` fails afterwards. Called when the store's `run()`
    /// ends, after its ``RedisConnectionLoop`` has stopped.
    func close() async {
        let (connections, pending) = state.withLock { state in
            state.closed = true
            let connections = state.nodes.compactMap(\.connection)
            let pending = state.nodes.compactMap(\.connecting)
            state.nodes = state.nodes.map { _ in Node() }
            return (connections, pending)
        }
        for waiting in pending { waiting.resolve(.failure(closedError)) }
        for connection in connections { await connection.close() }
    }
}
