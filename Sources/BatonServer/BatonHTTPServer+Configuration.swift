import Baton

extension BatonHTTPServer {
    /// How the service listens, what it accepts, and how long it waits.
    public struct Configuration: Sendable {
        /// The address to listen on; `0.0.0.0` (every IPv4 interface) by default.
        public var host: String
        /// The TCP port to listen on; 8080 by default, 0 for one the kernel picks.
        public var port: Int
        /// The bearer token every request but `/alive` and `/healthz` must carry (`Authorization: Bearer TOKEN`),
        /// or nil for no authentication. Compared in constant time; never logged.
        public var authToken: String?
        /// The largest request body accepted, in bytes; a larger body is answered `400`. 16 KiB by default.
        public var maxBodyBytes: Int
        /// How long a client may take to send one request, head and body, once the connection is ready for it
        /// (after it opened, or after the previous response). A slower client is disconnected, so it cannot
        /// hold a connection open by trickling bytes. 30 s by default.
        public var requestReadTimeout: Duration
        /// How long one store call may take before it is abandoned and answered `500` (`timeout`, safe to retry).
        /// 10 s by default.
        public var storeTimeout: Duration
        /// How often a Server-Sent Events stream sends a comment line when nothing happens, so that proxies keep
        /// it open and a gone client is noticed. 15 s by default.
        public var keepAliveInterval: Duration
        /// How long round records are kept (the v1 API). Seven days by default.
        public var retention: Duration
        /// Caps on connections, event streams and long polls, and the write timeout for clients that stop reading.
        public var limits: Limits

        /// The shortest lease ttl accepted: 100 ms.
        public static let minimumTTL: Duration = .milliseconds(100)
        /// The longest lease ttl accepted: one hour.
        public static let maximumTTL: Duration = .seconds(3600)
        /// The longest long-poll wait accepted: five minutes.
        public static let maximumWait: Duration = .seconds(300)

        /// Creates a configuration; every parameter has the default described on its property.
        public init(
            host: String = "0.0.0.0",
            port: Int = 8080,
            authToken: String? = nil,
            maxBodyBytes: Int = 16 * 1024,
            requestReadTimeout: Duration = .seconds(30),
            storeTimeout: Duration = .seconds(10),
            keepAliveInterval: Duration = .seconds(15),
            retention: Duration = RoundElection.defaultRetention,
            limits: Limits = Limits()
        ) {
            self.host = host
            self.port = port
            self.authToken = authToken
            self.maxBodyBytes = maxBodyBytes
            self.requestReadTimeout = requestReadTimeout
            self.storeTimeout = storeTimeout
            self.keepAliveInterval = keepAliveInterval
            self.retention = retention
            self.limits = limits
        }
    }
}
