import Baton

extension FaultInjectingStore {
    /// A family of operations, as the store contract groups them.
    public enum Family: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// `acquire`, `renew`, `release`, `current`, `changes`.
        case leases
        /// `claim`, `winner`, `complete`, `completion`.
        case rounds
        /// `heartbeat`, `leave`, `members`.
        case presence
        /// `run`.
        case lifecycle

        /// The family's name.
        public var description: String { rawValue }
    }

    /// One operation of ``LeaseStore``.
    public enum Operation: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// ``LeaseStore/acquire(key:holder:ttl:metadata:waiting:)``.
        case acquire
        /// ``LeaseStore/renew(_:ttl:)``.
        case renew
        /// ``LeaseStore/release(_:)``.
        case release
        /// ``LeaseStore/leaveQueue(key:holder:)``.
        case leaveQueue
        /// ``LeaseStore/current(key:)``.
        case current
        /// ``LeaseStore/changes(key:)``.
        case changes
        /// ``LeaseStore/claim(system:round:candidate:retention:)``.
        case claim
        /// ``LeaseStore/winner(system:round:)``.
        case winner
        /// ``LeaseStore/complete(system:round:by:retention:)``.
        case complete
        /// ``LeaseStore/completion(system:round:)``.
        case completion
        /// ``LeaseStore/heartbeat(group:member:ttl:)``.
        case heartbeat
        /// ``LeaseStore/leave(group:member:)``.
        case leave
        /// ``LeaseStore/members(group:)``.
        case members
        /// ``LeaseStore/leases(prefix:limit:)``.
        case leases
        /// ``LeaseStore/rounds(system:limit:)``.
        case rounds
        /// ``LeaseStoreDriver/run()``.
        case run

        /// The family the operation belongs to.
        public var family: Family {
            switch self {
            case .acquire, .renew, .release, .leaveQueue, .current, .changes, .leases: .leases
            case .claim, .winner, .complete, .completion, .rounds: .rounds
            case .heartbeat, .leave, .members: .presence
            case .run: .lifecycle
            }
        }

        /// The operation's name.
        public var description: String { rawValue }
    }

    /// Which operations a fault applies to.
    public enum Scope: Sendable, Hashable, CustomStringConvertible {
        /// Every operation.
        case all
        /// Every operation of one family.
        case family(Family)
        /// One operation.
        case operation(Operation)

        /// Whether the scope includes `operation`.
        public func covers(_ operation: Operation) -> Bool {
            switch self {
            case .all: true
            case .family(let family): operation.family == family
            case .operation(let only): operation == only
            }
        }

        /// The scope, for messages.
        public var description: String {
            switch self {
            case .all: "all operations"
            case .family(let family): "\(family) operations"
            case .operation(let operation): operation.rawValue
            }
        }
    }

    /// A fault injected into the calls of a ``Scope``.
    public enum Fault: Sendable, Hashable {
        /// The call throws ``BatonError/Code/storeUnavailable`` without reaching the wrapped store.
        case fail
        /// The call reaches the wrapped store, which applies it, but the answer is lost: the call throws
        /// ``BatonError/Code/storeUnavailable`` (what a timeout after the server acted looks like).
        case loseReply
        /// The call is delayed by this much (slept on the injected clock) before it reaches the wrapped store.
        case latency(Duration)
        /// The call is suspended until the faults change or the caller is cancelled.
        case hang
    }

    /// How calls behave while the store is partitioned away (see ``partition(_:)``).
    public enum PartitionMode: Sendable, Hashable {
        /// Every call throws ``BatonError/Code/storeUnavailable`` at once (connection refused).
        case failing
        /// Every call is suspended until the partition heals or the caller is cancelled (packets dropped).
        case hanging
    }

}

/// Random faults for a ``FaultInjectingStore``, drawn per call from a seeded generator, so that a randomized
/// run can be repeated exactly.
///
/// Every call in ``scope`` draws, in the order calls reach the store: a failure with
/// ``failureProbability``, else a lost reply with ``lostReplyProbability``, and latency uniformly from
/// ``latency`` with ``latencyProbability``. The same seed and the same order of calls give the same faults.
/// Drawn faults add to the faults set with ``FaultInjectingStore/setFault(_:for:)``.
public struct FaultPlan: Sendable, Hashable {
    /// The seed of the ``SeededRandom`` the draws come from.
    public var seed: UInt64
    /// The probability (0...1) that a call throws ``BatonError/Code/storeUnavailable`` without being applied.
    public var failureProbability: Double
    /// The probability (0...1) that a call is applied but its reply is lost (it throws `storeUnavailable`).
    public var lostReplyProbability: Double
    /// The probability (0...1) that a call is delayed.
    public var latencyProbability: Double
    /// The range a delay is drawn from (uniformly, in nanoseconds).
    public var latency: ClosedRange<Duration>
    /// The operations the plan applies to.
    public var scope: FaultInjectingStore.Scope

    /// A plan; every probability defaults to zero.
    public init(
        seed: UInt64,
        failureProbability: Double = 0,
        lostReplyProbability: Double = 0,
        latencyProbability: Double = 0,
        latency: ClosedRange<Duration> = .milliseconds(1) ... .milliseconds(50),
        scope: FaultInjectingStore.Scope = .all
    ) {
        self.seed = seed
        self.failureProbability = failureProbability
        self.lostReplyProbability = lostReplyProbability
        self.latencyProbability = latencyProbability
        self.latency = latency
        self.scope = scope
    }
}
