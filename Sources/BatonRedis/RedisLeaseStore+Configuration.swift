import NIOSSL

extension RedisLeaseStore {
    /// How a ``RedisLeaseStore`` connects and names its keys. Host, credentials, database and TLS come from the
    /// store URL; these are the rest.
    public struct Configuration: Sendable {
        /// Connections per node for commands (each pipelines any number of commands); one more per node is kept
        /// for pub/sub. Default 4.
        public var poolSize: Int = 4

        /// The pool of a process that campaigns for a few keys (`baton run`, `baton campaign`): one connection for
        /// commands per node (it pipelines every key's), beside the one for pub/sub.
        public static let candidatePoolSize = 1
        /// How long connecting (TCP, TLS and the handshake) may take. Default 5 s.
        public var connectTimeout: Duration = .seconds(5)
        /// How long a command's reply may take; a command without a reply in time fails with
        /// ``Baton/BatonError/Code/timeout`` and its connection is closed. Default 5 s.
        public var commandTimeout: Duration = .seconds(5)
        /// How long a connection (pub/sub or commands) may read nothing before it sends `PING` to check that the
        /// server is still there: a connection that died silently is noticed within this and ``probeTimeout``.
        /// The store lowers it to a quarter of the shortest ttl it is asked for (or reads from a leader). Nil
        /// never probes. Default 500 ms.
        public var probeInterval: Duration? = .milliseconds(500)
        /// How long the answer to a probe's `PING` may take before the connection is closed (and replaced) with
        /// ``Baton/BatonError/Code/timeout``; lowered to half of the shortest ttl in use. Default 1 s.
        public var probeTimeout: Duration = .seconds(1)
        /// The prefix of every key and channel (see ``RedisLeaseStore`` for the layout). Default `baton`.
        public var keyPrefix: String = "baton"
        /// TLS settings for `rediss://` URLs; nil uses the system's trust roots and verifies the host name.
        public var tls: TLSConfiguration?
        /// Redlock: the clock drift allowed, as a fraction of the ttl, subtracted (plus 2 ms) from a lease's
        /// validity. Default 0.01.
        public var clockDriftFactor: Double = 0.01

        /// The defaults.
        public init() {}
    }
}
