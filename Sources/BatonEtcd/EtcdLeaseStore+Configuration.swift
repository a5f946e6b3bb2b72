extension EtcdLeaseStore {
    /// How an ``EtcdLeaseStore`` talks to etcd. Endpoints, credentials and TLS come from the store URL; these
    /// are the rest.
    public struct Configuration: Sendable {
        /// How often the store does its upkeep: it revokes the leases of leaders that handed their keys over and
        /// drops what it remembers of waiting candidates whose holders stopped asking through it (their leases,
        /// kept alive only by their holders' asks, run out in etcd). Default 250 ms, on the store's clock.
        public var maintenanceInterval: Duration = .milliseconds(250)
        /// How often the client sends an HTTP/2 PING on its connection to check that etcd is still there (a
        /// connection whose PING is not answered within ``keepaliveTimeout`` is closed and made again, and its
        /// watch and keep-alive streams are opened anew); nil sends none. Default 1 s.
        ///
        /// etcd takes PINGs closer together than its `--grpc-keepalive-min-time` (default 5 s) for abuse when it
        /// sent no data between them, and closes the connection (GOAWAY `too_many_pings`) after the third. With an
        /// interval below 5 s, start etcd with `--grpc-keepalive-min-time` at or below the interval (for example
        /// `--grpc-keepalive-min-time 500ms`); or set the interval to 5 s or more, and a dead connection is then
        /// noticed that much later. On a connection with no stream open (a store that has kept no lease alive and
        /// follows no key) etcd does the same whatever the flag; the connection is then made again on the next
        /// request.
        public var keepaliveInterval: Duration? = .seconds(1)
        /// How long the answer to a PING may take before the connection is closed (and made again). Default 1 s.
        public var keepaliveTimeout: Duration = .seconds(1)

        /// The defaults.
        public init() {}
    }
}
