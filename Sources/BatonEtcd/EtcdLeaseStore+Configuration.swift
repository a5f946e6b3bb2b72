extension EtcdLeaseStore {
    /// How an ``EtcdLeaseStore`` talks to etcd. Endpoints, credentials and TLS come from the store URL; these
    /// are the rest.
    public struct Configuration: Sendable {
        /// How long one request may take before it fails with ``Baton/BatonError/Code/timeout``. Default 5 s.
        public var requestTimeout: Duration = .seconds(5)
        /// How often the store checks the candidates waiting in a queue: it keeps their etcd leases alive and
        /// removes the keys of candidates that stopped trying. Default 250 ms.
        public var maintenanceInterval: Duration = .milliseconds(250)

        /// The defaults.
        public init() {}
    }
}
