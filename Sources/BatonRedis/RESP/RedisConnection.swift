@_spi(BatonStoreKit) import Baton
import NIOCore
import NIOPosix
import NIOSSL

/// Where and how to connect to one Redis server.
struct RedisEndpoint: Sendable, CustomStringConvertible {
    var host: String
    var port: Int
    var user: String?
    var password: String?
    var database: Int
    /// TLS for `rediss://`; nil for plain TCP.
    var tls: NIOSSLContext?
    var connectTimeout: Duration
    var commandTimeout: Duration
    /// How a silent connection is detected (see ``RESPChannelHandler/Probe``); nil never probes.
    var probe: RESPChannelHandler.Probe?

    /// `host:port`: what errors and logs name (never credentials).
    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One connection to a Redis server, after its handshake: `HELLO 3` with the credentials (falling back to RESP2
/// with `AUTH` for servers before Redis 6), then `SELECT` of the database.
///
/// Any number of tasks may send on one connection at once; their commands are pipelined and each gets its own
/// reply. A command that gets no reply within the endpoint's command timeout fails with
/// ``BatonError/Code/timeout`` and closes the connection (and so fails every other command in flight on it with
/// ``BatonError/Code/storeUnavailable``): the outcome of those commands is unknown.
final class RedisConnection: Sendable {
    let channel: any Channel
    /// 3 after a successful `HELLO 3`, else 2.
    let protocolVersion: Int
    let endpoint: RedisEndpoint
    /// Whether a flush is queued on the event loop; only touched there.
    private let flushQueued: NIOLoopBoundBox<Bool>

    private init(channel: any Channel, protocolVersion: Int, endpoint: RedisEndpoint) {
        self.channel = channel
        self.protocolVersion = protocolVersion
        self.endpoint = endpoint
        self.flushQueued = .makeBoxSendingValue(false, eventLoop: channel.eventLoop)
    }

    /// Connects and completes the handshake.
    /// - Parameters:
    ///   - subscriber: the connection will be used for SUBSCRIBE (RESP2 confirmations and messages are pushes).
    ///   - onPush: called on the connection's event loop with every push (pub/sub messages).
    /// - Throws: ``BatonError`` `storeUnavailable` (cannot connect, the handshake failed), `timeout`,
    ///   `unauthorized` (the server refused the credentials).
    static func connect(
        to endpoint: RedisEndpoint,
        group: any EventLoopGroup,
        subscriber: Bool = false,
        onPush: @escaping @Sendable (RESPValue) -> Void = { _ in }
    ) async throws -> RedisConnection {
        let peer = endpoint.description
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(endpoint.connectTimeout.batonNanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls = endpoint.tls {
                        let serverName = Self.isIPAddress(endpoint.host) ? nil : endpoint.host
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try sync.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try sync.addHandler(
                        RESPChannelHandler(
                            peer: peer,
                            pushArraysInRESP2: subscriber,
                            probe: endpoint.probe,
                            onPush: onPush
                        )
                    )
                }
            }
        // Cancelling the connecting task (the store's run() ending) stops the wait at once; a channel connected
        // after that is closed as it arrives, and a handshake under way is ended by closing its channel.
        let connecting = bootstrap.connect(host: endpoint.host, port: endpoint.port)
        let connected = RedisPending<any Channel>()
        connecting.whenComplete { connected.resolve($0) }
        let channel: any Channel
        do {
            channel = try await connected.value()
        } catch is CancellationError {
            connecting.whenSuccess { $0.close(promise: nil) }
            throw CancellationError()
        } catch let error as ChannelError where error == .connectTimeout(.nanoseconds(0)) {
            throw BatonError.timeout("connecting to \(peer) timed out")
        } catch {
            throw BatonError.storeUnavailable("cannot connect to \(peer): \(error)", underlying: error)
        }
        do {
            let version = try await withTaskCancellationHandler {
                try await handshake(channel: channel, endpoint: endpoint)
            } onCancel: {
                channel.close(promise: nil)
            }
            try Task.checkCancellation()
            return RedisConnection(channel: channel, protocolVersion: version, endpoint: endpoint)
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Sends `command` and waits for its reply. An error reply is returned as ``RESPValue/error(_:)``.
    /// - Throws: ``BatonError`` `timeout` (no reply within the command timeout) or `storeUnavailable` (the
    ///   connection failed or closed).
    func send(_ command: RESPCommand) async throws -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RESPRequest(
            command: command,
            promise: promise,
            timeout: .nanoseconds(endpoint.commandTimeout.batonNanoseconds)
        )
        // Commands from many tasks are written as they come and flushed once per turn of the event loop: one
        // write system call for all the commands queued meanwhile.
        let channel = channel
        let flushQueued = flushQueued
        let peer = endpoint.description
        let enqueue: @Sendable () -> Void = {
            // On the event loop `isActive` is exact; a closed channel may have lost its handlers already.
            guard channel.isActive else {
                promise.fail(BatonError.storeUnavailable("the connection to \(peer) is closed"))
                return
            }
            channel.write(request, promise: nil)
            if !flushQueued.value {
                flushQueued.value = true
                channel.eventLoop.execute {
                    flushQueued.value = false
                    channel.flush()
                }
            }
        }
        // A request running on the connection's event loop (the store's request executor) writes at once.
        if channel.eventLoop.inEventLoop { enqueue() } else { channel.eventLoop.execute(enqueue) }
        // A request the front runs in its caller's task ends at its deadline: the reply, if it comes later, finds
        // the promise failed and is dropped (the connection stays in line with its commands).
        return try await RequestAbort.whileWaiting {
            try await promise.futureResult.get()
        } onAbort: { reason in
            promise.fail(reason)
        }
    }

    /// Sends `command` without waiting for a reply: for SUBSCRIBE and UNSUBSCRIBE, answered by pushes.
    func sendWithoutReply(_ command: RESPCommand) {
        channel.writeAndFlush(RESPRequest(command: command, promise: nil, timeout: nil), promise: nil)
    }

    /// Whether the connection is still open.
    var isActive: Bool { channel.isActive }

    /// Closes the connection; commands in flight fail with ``BatonError/Code/storeUnavailable``.
    func close() async {
        try? await channel.close()
    }

    private static func send(_ command: RESPCommand, on channel: any Channel, endpoint: RedisEndpoint) async throws
        -> RESPValue
    {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RESPRequest(
            command: command,
            promise: promise,
            timeout: .nanoseconds(endpoint.commandTimeout.batonNanoseconds)
        )
        let peer = endpoint.description
        channel.eventLoop.execute {
            // A channel closed already (a failed TLS handshake) may have lost its handlers: nothing would answer.
            guard channel.isActive else {
                promise.fail(BatonError.storeUnavailable("the connection to \(peer) closed during the handshake"))
                return
            }
            channel.writeAndFlush(request, promise: nil)
        }
        return try await promise.futureResult.get()
    }

    /// `HELLO 3 AUTH ...`, or RESP2 `AUTH` where HELLO is unknown; then `SELECT`. Returns the protocol version.
    private static func handshake(channel: any Channel, endpoint: RedisEndpoint) async throws -> Int {
        let peer = endpoint.description
        var hello = ["3"]
        if let password = endpoint.password {
            hello += ["AUTH", endpoint.user ?? "default", password]
        }
        hello += ["SETNAME", "baton"]
        var version = 3
        let reply = try await send(RESPCommand("HELLO", hello), on: channel, endpoint: endpoint)
        if let message = reply.errorMessage {
            if isAuthError(message) {
                throw BatonError.unauthorized("\(peer) refused the credentials: \(firstWord(message))")
            }
            // Redis before 6 knows no HELLO (or no RESP3): speak RESP2.
            version = 2
            if let password = endpoint.password {
                let auth = endpoint.user.map { [$0, password] } ?? [password]
                let answer = try await send(RESPCommand("AUTH", auth), on: channel, endpoint: endpoint)
                if let message = answer.errorMessage {
                    throw BatonError.unauthorized("\(peer) refused the credentials: \(firstWord(message))")
                }
            }
        }
        if endpoint.database != 0 {
            let answer = try await send(
                RESPCommand("SELECT", String(endpoint.database)), on: channel, endpoint: endpoint)
            if let message = answer.errorMessage {
                if isAuthError(message) {
                    throw BatonError.unauthorized("\(peer) requires credentials: \(firstWord(message))")
                }
                throw BatonError.storeUnavailable("\(peer) refused SELECT \(endpoint.database): \(message)")
            }
        }
        return version
    }

    static func isAuthError(_ message: String) -> Bool {
        ["WRONGPASS", "NOAUTH", "NOPERM"].contains(firstWord(message))
            || message.lowercased().contains("invalid password")
    }

    static func firstWord(_ message: String) -> String {
        String(message.prefix { $0 != " " })
    }

    private static func isIPAddress(_ host: String) -> Bool {
        host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
    }
}
