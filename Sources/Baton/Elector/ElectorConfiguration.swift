/// How a ``LeaderElector`` campaigns and leads.
///
/// The defaults suit most services: a 10 s ttl, a renew every ttl/3, a safety margin of
/// `max(ttl/10, 100 ms)`. A shorter ttl fails over faster after a crash and costs more store operations
/// (one renew per `renewInterval` per leader). Graceful handover does not depend on the ttl: a resigning
/// leader releases the key and the next candidate is woken at once.
public struct ElectorConfiguration: Sendable, Hashable {
    /// Retry timing after store errors: exponential, capped, with random jitter so that many candidates that
    /// saw one failure do not retry in lockstep.
    public struct Backoff: Sendable, Hashable {
        /// The first delay.
        public var initial: Duration
        /// The largest delay.
        public var maximum: Duration
        /// The factor between consecutive delays (at least 1).
        public var multiplier: Double
        /// The fraction of each delay that is randomised, in 0...1 (0.2: each delay is 80–100 % of nominal).
        public var jitter: Double

        public init(
            initial: Duration = .milliseconds(100),
            maximum: Duration = .seconds(5),
            multiplier: Double = 2,
            jitter: Double = 0.2
        ) {
            self.initial = initial
            self.maximum = maximum
            self.multiplier = multiplier
            self.jitter = jitter
        }

        /// The nominal delay before retry number `attempt` (1-based), before jitter.
        public func nominalDelay(attempt: Int) -> Duration {
            let exponent = Double(max(0, attempt - 1))
            let factor = min(pow2(multiplier, exponent), 1e9)
            let delay = initial * factor
            return min(delay, maximum)
        }

        private func pow2(_ base: Double, _ exponent: Double) -> Double {
            var result = 1.0
            var remaining = Int(exponent)
            while remaining > 0 && result < 1e9 {
                result *= base
                remaining -= 1
            }
            return result
        }
    }

    /// How long a term lasts in the store without a renew. Default 10 s.
    public var ttl: Duration
    /// How often the leader renews; nil means ttl/3.
    public var renewInterval: Duration?
    /// How much earlier than `t0 + ttl` the leader stops believing it leads; nil means `max(ttl/10, 100 ms)`.
    /// It must cover the difference in clock rate between this host and the store over one ttl.
    public var safetyMargin: Duration?
    /// How long to wait for one store call before treating it as failed; nil means the renew interval.
    public var requestTimeout: Duration?
    /// How often a waiting candidate re-tries on its own while the store's change feed is down; nil means ttl/2.
    /// While the feed works, a waiting candidate is woken by it and sends only one read per ttl (a check that the
    /// feed has not died silently).
    public var pollInterval: Duration?
    /// Retry timing after store errors.
    public var backoff: Backoff
    /// What the leader publishes to everyone while it leads (typically its address), at most 4 KiB.
    public var metadata: String?
    /// How long a resign or shutdown waits for the store to confirm the release. Default 2 s; after it the
    /// term simply expires in the store. The release itself goes on until the store answers it: a new campaign of
    /// the same elector sends its first acquire only then (an acquire before it would take up the term being
    /// released, and the late release would free the key under the new work).
    public var releaseTimeout: Duration
    /// Quorum mode: the number of members that must be alive in presence for this elector to lead; nil (the
    /// default) turns it off.
    ///
    /// With a quorum every elector heartbeats its holder name into ``presenceGroup`` every renew interval (alive
    /// for one ttl) and counts the live members after each heartbeat. A candidate campaigns only while it counts
    /// at least `quorum`; a leader that counts fewer, or that could not count for a whole ttl, steps down
    /// (``DemotionReason/quorumLost``) and releases the key. Members that are not candidates heartbeat the same
    /// group with ``LeaseStore/heartbeat(group:member:ttl:)``.
    public var quorum: Int?
    /// The presence group of quorum mode; nil means the key itself.
    public var presenceGroup: String?

    public init(
        ttl: Duration = .seconds(10),
        renewInterval: Duration? = nil,
        safetyMargin: Duration? = nil,
        requestTimeout: Duration? = nil,
        pollInterval: Duration? = nil,
        backoff: Backoff = Backoff(),
        metadata: String? = nil,
        releaseTimeout: Duration = .seconds(2),
        quorum: Int? = nil,
        presenceGroup: String? = nil
    ) {
        self.ttl = ttl
        self.renewInterval = renewInterval
        self.safetyMargin = safetyMargin
        self.requestTimeout = requestTimeout
        self.pollInterval = pollInterval
        self.backoff = backoff
        self.metadata = metadata
        self.releaseTimeout = releaseTimeout
        self.quorum = quorum
        self.presenceGroup = presenceGroup
    }

    /// The renew interval in force.
    public var effectiveRenewInterval: Duration { renewInterval ?? ttl / 3 }
    /// The safety margin in force.
    public var effectiveSafetyMargin: Duration { safetyMargin ?? max(ttl / 10, .milliseconds(100)) }
    /// The request timeout in force.
    public var effectiveRequestTimeout: Duration { requestTimeout ?? effectiveRenewInterval }
    /// The poll interval in force.
    public var effectivePollInterval: Duration { pollInterval ?? ttl / 2 }

    /// Checks that the values fit together.
    /// - Throws: ``BatonError`` `invalidArgument` naming the offending value and the rule it breaks.
    public func validate() throws(BatonError) {
        try BatonValidation.duration(ttl, "ttl")
        if ttl < .milliseconds(200) {
            throw .invalidArgument("ttl must be at least 200 ms, got \(ttl)")
        }
        let margin = effectiveSafetyMargin
        let renew = effectiveRenewInterval
        if margin <= .zero || margin >= ttl {
            throw .invalidArgument("safetyMargin must be positive and shorter than ttl (\(ttl)), got \(margin)")
        }
        if renew <= .zero {
            throw .invalidArgument("renewInterval must be positive, got \(renew)")
        }
        if renew >= ttl - margin {
            throw .invalidArgument(
                "renewInterval (\(renew)) must be shorter than ttl − safetyMargin (\(ttl - margin)), "
                    + "or the leader would demote itself before renewing"
            )
        }
        if effectiveRequestTimeout <= .zero {
            throw .invalidArgument("requestTimeout must be positive, got \(effectiveRequestTimeout)")
        }
        if effectivePollInterval <= .zero {
            throw .invalidArgument("pollInterval must be positive, got \(effectivePollInterval)")
        }
        if backoff.initial <= .zero || backoff.maximum < backoff.initial {
            throw .invalidArgument("backoff needs 0 < initial (\(backoff.initial)) ≤ maximum (\(backoff.maximum))")
        }
        if !(backoff.multiplier >= 1) {
            throw .invalidArgument("backoff.multiplier must be at least 1, got \(backoff.multiplier)")
        }
        if !(0...1).contains(backoff.jitter) {
            throw .invalidArgument("backoff.jitter must be within 0...1, got \(backoff.jitter)")
        }
        if releaseTimeout <= .zero {
            throw .invalidArgument("releaseTimeout must be positive, got \(releaseTimeout)")
        }
        try BatonValidation.metadata(metadata)
        if let quorum, quorum < 1 {
            throw .invalidArgument("quorum must be at least 1 member, got \(quorum)")
        }
        if let presenceGroup { try BatonValidation.name(presenceGroup, "presenceGroup") }
    }
}
