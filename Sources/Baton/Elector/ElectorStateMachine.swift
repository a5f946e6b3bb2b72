/// The campaign / lead / demote logic of ``LeaderElector``, with no I/O and no clock of its own.
///
/// The runtime feeds it inputs (store answers, leader observations, timer ticks, resign) together with the
/// current monotonic time, and performs the actions it returns. Every decision is therefore a pure function of
/// the inputs and the times given, which is what lets tests drive it on a simulated clock and a simulated store.
///
/// The safety rule lives here: a term is believed only until `t0 + ttl − margin`, where `t0` is the time at
/// which the successful acquire or renew was *sent*; when that deadline arrives the machine demotes, whatever
/// is in flight.
///
/// Release after work: however a term ends here (resign, stop, quorum loss), the
/// machine demotes first and asks for a release only *after* the work of that term returned
/// (``Action/release(_:)`` and ``Action/finish(release:)`` carry the term's deadline for that wait): the runtime
/// cancels the work at demotion, waits for it to return, and releases then — or, if the work is still running at
/// the term's deadline, releases nothing and leaves the key to the store's ttl.
///
/// A waiting candidate whose change feed looks healthy still checks the store once per ttl with one read
/// (``Action/check(_:)``): a feed on a connection that died silently must not keep it waiting forever. On a store that
/// queues waiting candidates (SQLite, PostgreSQL, etcd, Redis on one server) it asks again instead, once per ttl (every
/// third of the ttl on etcd; ``Settings/reaskInterval``): each ask keeps its place in the queue, which it leaves
/// within one and a half ttl (etcd: one ttl) once it stops asking. A run that ends without a term there (a resignation, a stop) leaves the queue at once first
/// (``Action/leaveQueue``) if a waiting acquire was refused since its last term, or may still be in flight.
///
/// Quorum mode (``ElectorConfiguration/quorum``) adds presence checks: every renew interval the machine asks for
/// a heartbeat and a count of the live members (``Action/checkPresence(_:)``). It acquires only while the last
/// count reached the quorum, and a leader steps down (``DemotionReason/quorumLost``) when a count falls short or
/// when no count succeeded for a whole ttl.
struct ElectorStateMachine {
    typealias RequestID = UInt64

    struct Settings {
        var ttl: Duration
        var renewInterval: Duration
        var margin: Duration
        var requestTimeout: Duration
        var pollInterval: Duration
        var backoff: ElectorConfiguration.Backoff
        /// How long a resign waits for an in-flight acquire to answer, so it can release what it may grant.
        var resignWait: Duration
        /// Quorum mode: the live members needed to lead; nil turns it off.
        var quorum: Int?
        /// On a store that queues waiting candidates: how often a waiting candidate asks again to keep its place
        /// (once per ttl, where a place outlives the ask by half a ttl; a third of the ttl on etcd); such asks
        /// replace the once-per-ttl check. Nil on other stores.
        var reaskInterval: Duration?
        /// The candidate's holder. A store with a queue reports the head of the queue as the leader before that
        /// candidate has taken the term, so only the next in line wakes up; a candidate that sees its own holder
        /// reported (with a token other than its last term's) takes that as its turn and acquires. Nil: only
        /// "no leader" wakes it.
        var holder: String?

        init(
            ttl: Duration,
            renewInterval: Duration,
            margin: Duration,
            requestTimeout: Duration,
            pollInterval: Duration,
            backoff: ElectorConfiguration.Backoff,
            resignWait: Duration,
            quorum: Int? = nil,
            reaskInterval: Duration? = nil,
            holder: String? = nil
        ) {
            self.ttl = ttl
            self.renewInterval = renewInterval
            self.margin = margin
            self.requestTimeout = requestTimeout
            self.pollInterval = pollInterval
            self.backoff = backoff
            self.resignWait = resignWait
            self.quorum = quorum
            self.reaskInterval = reaskInterval
            self.holder = holder
        }

        init(
            _ configuration: ElectorConfiguration, queuesWaiters: Bool = false, queueAsksPerTTL: Int = 3,
            holder: String? = nil
        ) {
            self.holder = holder
            ttl = configuration.ttl
            renewInterval = configuration.effectiveRenewInterval
            margin = configuration.effectiveSafetyMargin
            requestTimeout = configuration.effectiveRequestTimeout
            pollInterval = configuration.effectivePollInterval
            backoff = configuration.backoff
            resignWait = configuration.releaseTimeout
            quorum = configuration.quorum
            reaskInterval = queuesWaiters ? configuration.ttl / max(1, queueAsksPerTTL) : nil
        }
    }

    enum Input {
        case acquired(RequestID, Lease)
        case held(RequestID, LeaderInfo)
        case acquireFailed(RequestID, BatonError)
        case renewed(RequestID, Lease)
        case renewLost(RequestID)
        case renewFailed(RequestID, BatonError)
        /// A leader observation from the store's change feed (which is then known to work).
        case observed(LeaderInfo?)
        /// The store's change feed failed; until it delivers again, a waiting candidate polls.
        case feedLost
        /// A timer fired (possibly a stale one: ticks are idempotent).
        case tick
        /// Step down and leave the election, waiting briefly for an acquire in flight.
        case resign
        /// Stop now (the task was cancelled): release what is known to be held, wait for nothing.
        case stop
        /// Quorum mode: the heartbeat of a presence check succeeded and this many members are alive.
        case presence(RequestID, alive: Int)
        /// Quorum mode: the presence check failed.
        case presenceFailed(RequestID, BatonError)
        /// The answer to a ``Action/check(_:)``: the store's current leader of the key.
        case checked(RequestID, LeaderInfo?)
        /// A ``Action/check(_:)`` failed.
        case checkFailed(RequestID, BatonError)

        /// Whether this is the answer to an acquire.
        var answersAcquire: Bool {
            switch self {
            case .acquired, .held, .acquireFailed: true
            default: false
            }
        }
    }

    /// A term to give back once its work has returned.
    struct Release: Equatable {
        /// The term.
        var lease: Lease
        /// The term's deadline (on the machine's clock): work of the term still running then is not waited for,
        /// and the term is not released (the store's ttl frees it).
        var workDeadline: Duration
    }

    enum Action {
        case acquire(RequestID)
        case renew(RequestID, Lease)
        /// Release this term once its work has returned (see ``Release``).
        case release(Release)
        case elected(Lease)
        /// A renew succeeded: the term's deadline (``termDeadline``) moved on.
        case extended(Lease)
        case demoted(Lease, DemotionReason)
        case leaderChanged(LeaderInfo?)
        case storeError(BatonError)
        /// Deliver a `.tick` at this time.
        case schedule(at: Duration)
        /// Take this candidate's place out of the store's queue (before a ``finish(release:)`` without a term):
        /// a candidate that stops waiting leaves at once, so that a release meanwhile passes it over.
        case leaveQueue
        /// End the run, releasing this term first (once its work has returned) if there is one.
        case finish(release: Release?)
        /// Quorum mode: heartbeat this member, count the live members, answer with `.presence` or
        /// `.presenceFailed`.
        case checkPresence(RequestID)
        /// Read the store's current leader of the key (one cheap read) and answer with `.checked` or `.checkFailed`.
        case check(RequestID)
    }

    struct Request {
        var id: RequestID
        var sentAt: Duration
    }

    struct Following {
        var leader: LeaderInfo?
        var detached: Bool
        var inFlight: Request?
        var retryAt: Duration?
        var failures: Int
        /// The feed reported no leader while an acquire was in flight: if that acquire is refused, its answer may
        /// predate the release the feed saw, so the candidate tries once more instead of waiting for a change
        /// the feed has already delivered.
        var freedDuringRequest = false
        /// While the feed looks healthy: when to check the store with one read (at least once per ttl).
        var checkAt: Duration?
        /// A check in flight.
        var check: Request?
    }

    struct Leading {
        var lease: Lease
        var deadline: Duration
        var renewAt: Duration
        var inFlight: Request?
        var failures: Int
    }

    /// Quorum mode: the presence checks.
    struct Presence {
        var inFlight: Request?
        var nextAt: Duration = .zero
        /// Whether the last count reached the quorum.
        var met = false
        /// Until when the last count that reached the quorum is believed (sent + ttl).
        var confirmedUntil: Duration = .zero
    }

    enum State {
        case idle
        case following(Following)
        case leading(Leading)
        case resigning(Request, until: Duration)
        case finished
    }

    var state: State = .idle
    let settings: Settings
    var nextRequestID: RequestID = 1
    /// The earliest tick requested and not yet delivered.
    var scheduledWake: Duration?
    /// Whether the change feed works: while it does, a waiting candidate relies on it and never polls.
    var feedHealthy = false
    /// The token of the last term this candidate held: a report of its own holder with that token is a stale view
    /// of a term it has given up, not its turn.
    var lastOwnToken: Int64?
    /// Whether the store may keep a place in its queue for this candidate: a waiting acquire was refused (or may
    /// have been, if it is still in flight) since the last one that won.
    var mayBeQueued = false

    /// Whether an observed leader (nil: none) lets this candidate try: nobody leads, or the store names this
    /// candidate as the next in its queue.
    func mayTry(_ info: LeaderInfo?) -> Bool {
        guard let info else { return true }
        return settings.holder != nil && info.holder == settings.holder && info.token != lastOwnToken
    }
    var random: SplitMix64
    var presence = Presence()

    init(settings: Settings, seed: UInt64) {
        self.settings = settings
        self.random = SplitMix64(seed: seed)
    }

    var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    /// The lease this machine believes it leads under.
    var lease: Lease? {
        if case .leading(let leading) = state { return leading.lease }
        return nil
    }

    /// The deadline of the term led now (`t0 + ttl − margin` of the last successful acquire or renew), if leading.
    var termDeadline: Duration? {
        if case .leading(let leading) = state { return leading.deadline }
        return nil
    }

    // MARK: Inputs

    mutating func start(now: Duration) -> [Action] {
        guard case .idle = state else { return [] }
        var following = Following(leader: nil, detached: true, inFlight: nil, retryAt: nil, failures: 0)
        var actions: [Action] = []
        if settings.quorum != nil { checkPresence(now: now, into: &actions) }
        sendAcquire(&following, now: now, into: &actions)
        state = .following(following)
        return actions
    }

    mutating func handle(_ input: Input, now: Duration) -> [Action] {
        if let wake = scheduledWake, wake <= now { scheduledWake = nil }
        switch input {
        case .observed: feedHealthy = true
        case .feedLost: feedHealthy = false
        default: break
        }
        var actions: [Action] = []
        switch input {
        case .presence, .presenceFailed:
            handlePresence(input, now: now, into: &actions)
            return actions
        default:
            break
        }
        switch state {
        case .idle, .finished:
            return []
        case .following(var following):
            handleFollowing(&following, input, now: now, into: &actions)
        case .leading(var leading):
            handleLeading(&leading, input, now: now, into: &actions)
        case .resigning(let request, let until):
            return handleResigning(request, until: until, input, now: now)
        }
        if case .tick = input { presenceTick(now: now, into: &actions) }
        return actions
    }

    // MARK: Helpers

    mutating func takeRequestID() -> RequestID {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    /// Asks for a tick at `time` unless an earlier or equal one is already pending.
    mutating func wake(at time: Duration, into actions: inout [Action]) {
        if let pending = scheduledWake, pending <= time { return }
        scheduledWake = time
        actions.append(.schedule(at: time))
    }

    /// Ends the run without a term to release, leaving the store's queue first if this candidate may have a
    /// place there.
    mutating func finishWithoutTerm(hasRequestInFlight: Bool = false, into actions: inout [Action]) {
        state = .finished
        if settings.reaskInterval != nil && (mayBeQueued || hasRequestInFlight) { actions.append(.leaveQueue) }
        actions.append(.finish(release: nil))
    }

    mutating func delay(failures: Int) -> Duration {
        let nominal = min(settings.backoff.nominalDelay(attempt: failures), settings.ttl)
        let jitter = settings.backoff.jitter * random.nextUnit()
        return nominal * (1 - jitter)
    }
}
