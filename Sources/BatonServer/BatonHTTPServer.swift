@_spi(BatonStoreKit) import Baton
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import Prometheus

/// Baton's HTTP service: round elections compatible with gone (v1), leases over JSON with long polls and
/// Server-Sent Events (v2), health, readiness and Prometheus metrics, over any ``LeaseStore``.
///
/// The service keeps no state of its own: every answer comes from the store, so replicas over one shared store
/// give the same answers. It is a library so that tests drive it in-process; `baton serve` runs it.
///
/// ```swift
/// let server = BatonHTTPServer(store: store, configuration: .init(port: 8080))
/// try await server.makeApplication().runService()   // until SIGTERM or SIGINT
/// ```
///
/// Graceful shutdown (the ServiceLifecycle one, e.g. on SIGTERM) stops accepting connections, lets requests in
/// flight finish, answers waiting long polls at once (`409`, the lease was not taken) and ends event streams.
public struct BatonHTTPServer: Sendable {
    /// The store every answer comes from. The server does not close it.
    public let store: LeaseStore
    /// How the service listens and what it accepts.
    public let configuration: Configuration
    /// The registry `/metrics` prints; the service adds its request metrics to it.
    public let registry: PrometheusCollectorRegistry
    /// The logger of the service.
    public let logger: Logger
    let metrics: HTTPMetrics
    /// The tokens accepted now: ``Configuration-swift.struct/access`` at first, then what ``reloadAccess(_:)`` gave.
    let currentAccess: CurrentAccess
    let limiters: ServiceLimiters
    /// One acquire of a semaphore at a time per holder (key and holder), so that two requests of one holder sent
    /// together do not take two slots.
    let permitTurns = KeyedTurns()

    /// Creates the service.
    /// - Parameters:
    ///   - store: where leases and rounds live.
    ///   - configuration: address, authentication, limits and timeouts.
    ///   - registry: the Prometheus registry that `/metrics` prints. Bootstrap swift-metrics with a
    ///     `PrometheusMetricsFactory` over the same registry to include the metrics of Baton's core.
    ///   - logger: for the service's own messages (start, store failures); requests are not logged above `debug`.
    public init(
        store: LeaseStore,
        configuration: Configuration = Configuration(),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        logger: Logger = Logger(label: "baton.serve")
    ) {
        self.store = store
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.metrics = HTTPMetrics(registry: registry)
        self.currentAccess = CurrentAccess(configuration.accessPolicy)
        self.limiters = ServiceLimiters(configuration.limits, registry: registry)
    }

    /// Every route of the service: method, path template, statuses. `docs/openapi.json` documents exactly these.
    public var routes: [RouteDescription] { routeTable().map(\.description) }

    /// The router with every route and middleware: metrics and error answers outermost, then `405` for a known
    /// path with another method, then authentication.
    public func makeRouter() -> Router<BatonRequestContext> {
        let router = Router(context: BatonRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics, logger: logger))
        let table = routeTable()
        router.add(middleware: MethodNotAllowedMiddleware(table: RouteMethodTable(table.map(\.description))))
        if configuration.accessPolicy != nil {
            let open = Set(table.filter(\.description.isOpen).map(\.description.path))
            router.add(middleware: BearerTokenMiddleware(policy: currentAccess, openPaths: open))
        }
        for route in table {
            router.on(RouterPath(route.description.path), method: route.description.method, use: route.handler)
        }
        return router
    }

    /// The Hummingbird application: HTTP/1.1 on ``Configuration-swift.struct/host`` and
    /// ``Configuration-swift.struct/port`` (over TLS with ``Configuration-swift.struct/tls``), with the connection
    /// cap, the request read deadline and the write timeout (``Configuration-swift.struct/Limits``). Run it as a
    /// `Service`; a TLS configuration that cannot be used makes it throw when it starts.
    /// - Parameter onServerRunning: called once the server listens, with its channel (whose `localAddress` tells
    ///   the port when the configuration asked for port 0).
    public func makeApplication(
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> Application<RouterResponder<BatonRequestContext>> {
        let readTimeout = TimeAmount.nanoseconds(configuration.requestReadTimeout.batonNanoseconds)
        let writeTimeout = TimeAmount.nanoseconds(configuration.limits.effectiveWriteTimeout.batonNanoseconds)
        let limiters = self.limiters
        var server = HTTPServerBuilder.http1(
            configuration: .init(
                additionalChannelHandlers: [
                    ConnectionLimitHandler(slots: limiters.connections),
                    RequestReadTimeoutHandler(timeout: readTimeout),
                    ClientGoneHandler(),
                    WriteTimeoutHandler(timeout: writeTimeout) { limiters.metrics.writeTimeouts.increment() },
                ],
                idleTimeout: nil
            )
        )
        if let tls = configuration.tls {
            do {
                server = try .tls(server, tlsConfiguration: tls)
            } catch {
                // Never plain HTTP in place of HTTPS: the server fails to start with the error.
                server = HTTPServerBuilder { _ in throw error }
            }
        }
        return Application(
            router: makeRouter(),
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "baton"
            ),
            onServerRunning: onServerRunning,
            logger: logger
        )
    }

    /// One route: its description and its handler (which checks the token's scope first, see ``KeyAccess``).
    struct Route: Sendable {
        var description: RouteDescription
        var handler: @Sendable (Request, BatonRequestContext) async throws -> Response
    }

    /// The one table of routes, so that the router and ``routes`` cannot disagree.
    func routeTable() -> [Route] {
        let authenticated = configuration.accessPolicy != nil
        func route(
            _ method: HTTPRequest.Method,
            _ path: String,
            _ statuses: Set<Int>,
            open: Bool = false,
            access: KeyAccess? = nil,
            _ handler: @escaping @Sendable (Request, BatonRequestContext) async throws -> Response
        ) -> Route {
            var statuses = statuses
            if authenticated && !open { statuses.insert(401) }
            if authenticated && access != nil { statuses.insert(403) }
            return Route(
                description: RouteDescription(method: method, path: path, statuses: statuses, isOpen: open),
                // Without tokens every request may do everything: no check, and one frame less in every
                // connection's task.
                handler: authenticated ? access.map { checking($0, handler) } ?? handler : handler
            )
        }
        return [
            route(.get, "/api/v1/elect/{system}/{round}", [202, 204, 400, 500], access: .write("system"), elect),
            route(.get, "/api/v1/elected/{system}/{round}", [200, 204, 400, 500], access: .read("system"), elected),
            route(.get, "/api/v1/complete/{system}/{round}", [200, 400, 403, 500], access: .write("system"), complete),
            route(
                .post, "/api/v1/complete/{system}/{round}", [200, 400, 403, 500], access: .write("system"), complete),
            route(
                .get, "/api/v1/completed/{system}/{round}", [200, 204, 400, 500], access: .read("system"), completed),
            route(.get, "/", [200], open: true, statusPage),
            route(.get, "/alive", [200], open: true, alive),
            route(.post, "/v2/leases/{key}", [200, 400, 409, 429, 500, 503], access: .write("key"), acquire),
            route(.put, "/v2/leases/{key}", [200, 400, 409, 500], access: .write("key"), renew),
            route(.delete, "/v2/leases/{key}", [204, 400, 409, 500], access: .write("key"), release),
            route(.get, "/v2/leases/{key}", [200, 400, 404, 500], access: .read("key"), leader),
            route(.get, "/v2/leases/{key}/watch", [200, 400, 429, 500, 503], access: .read("key"), watch),
            route(.post, "/v2/semaphores/{key}", [200, 400, 409, 429, 500, 503], access: .write("key"), acquirePermit),
            route(.put, "/v2/semaphores/{key}", [200, 400, 409, 500], access: .write("key"), renewPermit),
            route(.delete, "/v2/semaphores/{key}", [204, 400, 409, 500], access: .write("key"), releasePermit),
            route(.get, "/v2/semaphores/{key}", [200, 400, 404, 500], access: .read("key"), semaphore),
            route(.get, "/v2/shards/{key}", [200, 400, 404, 500], access: .read("key"), shardOwnership),
            route(.get, "/v2/leases", [200, 400, 500], listLeases),
            route(.get, "/v2/rounds/{system}", [200, 400, 500], access: .read("system"), listRounds),
            route(.get, "/healthz", [200], open: true, healthz),
            route(.get, "/readyz", [200, 503], readyz),
            route(.get, "/metrics", [200], metricsText),
        ]
    }

    /// Runs one store call, abandoning it after ``Configuration-swift.struct/storeTimeout``
    /// (``BatonError/Code/timeout``: the outcome is unknown and a retry is safe).
    func withStore<Value: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let timeout = configuration.storeTimeout
        // The store's front bounds every request by its own deadline, with no task or timer of its own per
        // request: when that deadline is no later than the service's, it is the service's.
        if store.configuration.requestTimeout <= timeout {
            return try await body()
        }
        return try await withThrowingTaskGroup(of: Value?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw BatonError.timeout("\(operation) did not finish within \(timeout)")
            }
            return value
        }
    }

    /// A path parameter, percent-decoded and checked as a name (1–256 bytes of UTF-8, no control characters).
    func name(_ parameter: String, _ context: BatonRequestContext) throws(APIError) -> String {
        guard let raw = context.parameters.get(parameter) else {
            throw .badRequest("the path has no \(parameter)")
        }
        guard let decoded = raw.removingURLPercentEncoding() else {
            throw .badRequest("the \(parameter) in the path has a malformed percent-escape or is not UTF-8")
        }
        do {
            try BatonValidation.name(decoded, parameter)
        } catch {
            throw .badRequest(error.message)
        }
        return decoded
    }
}

extension String {
    /// The string with `%XX` escapes decoded; nil for a malformed escape or bytes that are not UTF-8.
    func removingURLPercentEncoding() -> String? {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue)
            else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The value of one hex digit (`0`–`9`, `a`–`f`, `A`–`F`), or nil.
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
