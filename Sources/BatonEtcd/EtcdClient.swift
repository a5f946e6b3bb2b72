@_spi(BatonStoreKit) import Baton
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Synchronization

/// The gRPC connections to an etcd cluster: one client per endpoint, calls sent to the endpoint that answered
/// last and moved on to the next one when it cannot be reached; user/password auth by `Authenticate`, whose
/// token is sent as the `token` metadata of every call.
final class EtcdClient: Sendable {
    typealias Transport = HTTP2ClientTransport.Posix

    struct Endpoint: Sendable {
        let name: String
        let client: GRPCClient<Transport>
    }

    private let endpoints: [Endpoint]
    private let credentials: (user: String, password: String)?
    private let clock: BatonClock
    private let state = Mutex(State())
    /// Bounds the requests under way at once (streams are not counted).
    private let limiter = RequestLimiter(limit: EtcdClient.maxRequestsUnderWay)

    /// The most requests (not streams) one store has under way at once; the rest wait in order.
    static let maxRequestsUnderWay = 256

    /// The bound on one gRPC call, so no request (the store's own background ones included) waits forever on a
    /// connection that stopped answering; callers' requests are bounded, usually more tightly, by the
    /// ``Baton/LeaseStore`` front's deadline.
    static let callTimeout: Duration = .seconds(5)

    private struct State {
        var active = 0
        var token: String?
        var closed = false
    }

    init(
        hosts: [(host: String, port: Int)],
        security: Transport.TransportSecurity,
        credentials: (user: String, password: String)?,
        clock: BatonClock,
        keepalive: (interval: Duration, timeout: Duration)?
    ) throws {
        var endpoints: [Endpoint] = []
        for (host, port) in hosts {
            do {
                let transport = try Transport(
                    target: .dns(host: host, port: port),
                    transportSecurity: security,
                    config: .defaults { config in
                        // Reconnect soon after etcd comes back: the default backoff grows to two minutes, far
                        // beyond a lease's ttl.
                        config.backoff = .init(
                            initial: .milliseconds(50), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
                        // HTTP/2 PINGs every `interval`: a connection that died silently is closed after `timeout`
                        // without the PING's answer, its calls fail, and the channel connects again. With calls
                        // only, the transport stops pinging for good once a connection had no call open for a
                        // moment (its keep-alive timer is cancelled then and restarted only by a PING's answer),
                        // which every connection has between its first requests: so also without calls. etcd
                        // answers PINGs on a connection without open streams with GOAWAY too_many_pings after the
                        // third; a store keeps its keep-alive stream open from its first lease on, and a change
                        // feed its watch, so that costs at most a new connection for a store with neither.
                        config.connection.keepalive = keepalive.map { keepalive in
                            .init(time: keepalive.interval, timeout: keepalive.timeout, allowWithoutCalls: true)
                        }
                        config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                            EtcdPingAnswerer.install(on: channel)
                        }
                    }
                )
                endpoints.append(Endpoint(name: "\(host):\(port)", client: GRPCClient(transport: transport)))
            } catch {
                throw BatonError.invalidArgument("cannot set up a gRPC connection to \(host):\(port): \(error)")
            }
        }
        self.endpoints = endpoints
        self.credentials = credentials
        self.clock = clock
    }

    /// Runs every endpoint's connections until ``close()`` (or cancellation) ends them: the store's `run()`
    /// runs this as a child task.
    func runConnections() async {
        await withDiscardingTaskGroup { group in
            for endpoint in endpoints {
                group.addTask { try? await endpoint.client.runConnections() }
            }
        }
    }

    /// Begins shutting every connection down (``runConnections()`` returns once they are closed); later calls
    /// fail with `storeUnavailable`.
    func close() {
        state.withLock { $0.closed = true }
        for endpoint in endpoints { endpoint.client.beginGracefulShutdown() }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Signs in with the URL's credentials, if it has any, so credentials etcd refuses are known at once.
    /// - Throws: ``Baton/BatonError`` `unauthorized` when etcd refuses them; `storeUnavailable` or `timeout`
    ///   when no endpoint answers (the credentials are then tried again by the next request).
    func signIn() async throws {
        guard credentials != nil else { return }
        try await call("sign in") { _, _ in }
    }

    /// Options for one call: ``callTimeout``, and no waiting for a connection that is down (so a dead
    /// endpoint fails fast and the next one is tried).
    func options() -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = Self.callTimeout
        // A request the front runs in its caller's task ends by itself at the request's deadline.
        if let deadline = RequestAbort.current?.deadline {
            options.timeout = max(.milliseconds(1), min(Self.callTimeout, ContinuousClock.now.duration(to: deadline)))
        }
        options.waitForReady = false
        return options
    }

    /// Runs `body` against the active endpoint with auth metadata, moving to the next endpoint when the active
    /// one is unavailable (twice round the list, the second time after a short pause: a stream closed by a
    /// connection that went away is retried on a new one), and authenticating again once when the token was
    /// refused. Every etcd request Baton sends is safe to repeat: writes are guarded by comparisons. `attempts`
    /// limits the tries (1 for a call whose body can run only once). A request (not a `stream`) waits while
    /// ``maxRequestsUnderWay`` others are under way.
    /// Errors come out as ``BatonError`` (`storeUnavailable`, `timeout`, `unauthorized`).
    func call<Result: Sendable>(
        _ what: String,
        attempts: Int? = nil,
        stream: Bool = false,
        _ body: (GRPCClient<Transport>, Metadata) async throws -> Result
    ) async throws -> Result {
        if stream { return try await callUnlimited(what, attempts: attempts, body) }
        return try await limiter.run { try await callUnlimited(what, attempts: attempts, body) }
    }

    private func callUnlimited<Result: Sendable>(
        _ what: String,
        attempts: Int?,
        _ body: (GRPCClient<Transport>, Metadata) async throws -> Result
    ) async throws -> Result {
        let (start, closed) = state.withLock { ($0.active, $0.closed) }
        let attempts = attempts ?? endpoints.count * 2
        if closed { throw BatonError.storeUnavailable("the etcd store is closed") }
        var lastError: (any Error)?
        var reauthenticated = false
        var attempt = 0
        while attempt < attempts {
            if attempt == endpoints.count { try await clock.sleep(for: .milliseconds(50)) }
            let index = (start + attempt) % endpoints.count
            let endpoint = endpoints[index]
            do {
                let metadata = try await authMetadata(endpoint)
                let result = try await body(endpoint.client, metadata)
                state.withLock { $0.active = index }
                return result
            } catch let error as RPCError {
                lastError = error
                switch error.code {
                case .unavailable, .aborted:
                    attempt += 1
                case .cancelled where !Task.isCancelled:
                    attempt += 1
                case .unauthenticated where credentials != nil && !reauthenticated:
                    reauthenticated = true
                    state.withLock { $0.token = nil }
                default:
                    throw Self.batonError(error, what)
                }
            } catch let error as BatonError {
                if error.code == .storeUnavailable {
                    lastError = error
                    attempt += 1
                } else {
                    throw error
                }
            }
        }
        if let error = lastError as? RPCError { throw Self.batonError(error, what) }
        if let error = lastError as? BatonError { throw error }
        throw BatonError.storeUnavailable("\(what): no etcd endpoint answered")
    }

    /// The `token` metadata of an authenticated session, authenticating first if there is no token yet.
    private func authMetadata(_ endpoint: Endpoint) async throws -> Metadata {
        guard let credentials else { return [:] }
        if let token = state.withLock({ $0.token }) { return ["token": .string(token)] }
        let request = Etcdserverpb_AuthenticateRequest.with {
            $0.name = credentials.user
            $0.password = credentials.password
        }
        do {
            let response = try await Etcdserverpb_Auth.Client(wrapping: endpoint.client).authenticate(
                request,
                options: options()
            )
            state.withLock { $0.token = response.token }
            return ["token": .string(response.token)]
        } catch let error as RPCError {
            switch error.code {
            case .invalidArgument, .unauthenticated, .permissionDenied, .failedPrecondition:
                // The message never holds the password; etcd says "authentication failed, invalid user ID or
                // password" or "authentication is not enabled".
                throw BatonError.unauthorized("etcd refused user \(credentials.user): \(error.message)")
            default:
                throw error
            }
        }
    }

    /// A gRPC error as a ``BatonError``; the message is etcd's, which never carries a password or token.
    static func batonError(_ error: RPCError, _ what: String) -> BatonError {
        switch error.code {
        case .deadlineExceeded:
            return .timeout("\(what): etcd did not answer in time")
        case .unauthenticated, .permissionDenied:
            return .unauthorized("\(what): etcd refused the request: \(error.message)")
        case .invalidArgument, .outOfRange, .failedPrecondition:
            return .storeUnavailable("\(what): etcd refused the request: \(error.message)", underlying: error)
        default:
            return .storeUnavailable(
                "\(what): etcd is unavailable (\(error.code)): \(error.message)", underlying: error)
        }
    }
}
