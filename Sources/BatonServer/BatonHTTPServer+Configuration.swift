import Baton
import HummingbirdTLS

extension BatonHTTPServer {
    /// How the service listens, what it accepts, and how long it waits.
    public struct Configuration: Sendable {
        /// The address to listen on; `0.0.0.0` (every IPv4 interface) by default.
        public var host: String
        /// The TCP port to listen on; 8080 by default, 0 for one the kernel picks.
        public var port: Int
        /// The bearer token every request but `/alive` and `/healthz` must carry (`Authorization: Bearer TOKEN`),
        /// or nil for no authentication. Compared in constant time; never logged. The token may read and write
        /// every key; ``access`` gives tokens scoped to key prefixes (both may be set).
        public var authToken: String?
        /// Bearer tokens scoped to key prefixes (outside its scope a request is answered `403`), or nil. With
        /// ``authToken`` also set, that token is accepted too, with full access.
        public var access: AccessPolicy?
        /// The TLS server configuration (certificate chain and private key) to serve HTTPS, or nil for plain HTTP.
        /// ``BatonHTTPServer/tlsConfiguration(certificateFile:privateKeyFile:)`` reads it from PEM files.
        public var tls: TLSConfiguration?
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

        /// The tokens the service accepts: ``access`` and ``authToken`` together, or nil for no authentication.
        var accessPolicy: AccessPolicy? {
            var policy = access
            if let authToken {
                if policy == nil {
                    policy = AccessPolicy(token: authToken)
                } else {
                    policy?.merge(AccessPolicy(token: authToken))
                }
            }
            return policy
        }

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
            access: AccessPolicy? = nil,
            tls: TLSConfiguration? = nil,
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
            self.access = access
            self.tls = tls
            self.maxBodyBytes = maxBodyBytes
            self.requestReadTimeout = requestReadTimeout
            self.storeTimeout = storeTimeout
            self.keepAliveInterval = keepAliveInterval
            self.retention = retention
            self.limits = limits
        }
    }
}
