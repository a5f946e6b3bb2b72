@_spi(BatonStoreKit) import Baton

extension S3LeaseStore {
    /// How the S3 store talks to the bucket and how often it polls.
    public struct Configuration: Sendable {
        /// How often ``S3LeaseStore/changes(key:)`` reads the lease object while a term is held. Nil (the
        /// default): a quarter of the term's ttl.
        public var pollInterval: Duration?
        /// How often ``S3LeaseStore/changes(key:)`` reads the lease object while nobody holds the key.
        public var idlePollInterval: Duration
        /// The credentials; nil (the default) reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
        /// `AWS_SESSION_TOKEN`.
        public var credentials: S3Credentials?
        /// The monotonic clock that times takeovers and expiry; the host's continuous clock by default.
        @_spi(BatonStoreKit) public var clock: BatonClock

        /// The defaults: poll at ttl/4 (1 s while the key is free), credentials from the environment, the host's
        /// continuous clock. Requests have no timeout of their own: the ``Baton/LeaseStore`` front bounds every
        /// operation (``Baton/LeaseStore/Configuration/requestTimeout``).
        public init<C: Clock>(
            pollInterval: Duration? = nil,
            idlePollInterval: Duration = .seconds(1),
            credentials: S3Credentials? = nil,
            clock: C = ContinuousClock()
        ) where C.Duration == Duration {
            self.pollInterval = pollInterval
            self.idlePollInterval = idlePollInterval
            self.credentials = credentials
            self.clock = BatonClock(clock)
        }
    }
}
