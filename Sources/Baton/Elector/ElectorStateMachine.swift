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
/// (``Action/check(_:)``): a feed on a connection that died silently must not keep it waiting forever.
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

        init(
            ttl: Duration,
            renewInterval: Duration,
            margin: Duration,
            requestTimeout: Duration,
            pollInterval: Duration,
            backoff: ElectorConfiguration.Backoff,
            resignWait: Duration,
            quorum: Int? = nil
        ) {
            self.ttl = ttl
            self.renewInterval = renewInterval
            self.margin = margin
            self.requestTimeout = requestTimeout
            self.pollInterval = pollInterval
            self.backoff = backoff
            self.resignWait = resignWait
            self.quorum = quorum
        }

        init(_ configuration: ElectorConfiguration) {
            ttl = configuration.ttl
            renewInterval = configuration.effectiveRenewInterval
            margin = configuration.effectiveSafetyMargin
            requestTimeout = configuration.effectiveRequestTimeout
            pollInterval = configuration.effectivePollInterval
            backoff = configuration.backoff
            resignWait = configuration.releaseTimeout
            quorum = configuration.quorum
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

    private(set) var state: State = .idle
    let settings: Settings
    private var nextRequestID: RequestID = 1
    /// The earliest tick requested and not yet delivered.
    private(set) var scheduledWake: Duration?
    /// Whether the change feed works: while it does, a waiting candidate relies on it and never polls.
    private(set) var feedHealthy = false
    private var random: SplitMix64
    private(set) var presence = Presence()

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

    // MARK: Quorum

    /// Sends a presence check now.
    private mutating func checkPresence(now: Duration, into actions: inout [Action]) {
        let id = takeRequestID()
        presence.inFlight = Request(id: id, sentAt: now)
        actions.append(.checkPresence(id))
        wake(at: now + settings.requestTimeout, into: &actions)
    }

    /// On a tick in quorum mode: time out a check, send the next one when due, step down when the last count
    /// that reached the quorum is older than a ttl.
    private mutating func presenceTick(now: Duration, into actions: inout [Action]) {
        guard settings.quorum != nil, !isFinished else { return }
        if case .resigning = state { return }
        if let request = presence.inFlight, now >= request.sentAt + settings.requestTimeout {
            presence.inFlight = nil
            presence.nextAt = now
            actions.append(.storeError(.timeout("the presence check got no answer within \(settings.requestTimeout)")))
        }
        if case .leading(let leading) = state, now >= presence.confirmedUntil {
            presence.met = false
            stepDownForQuorum(leading, now: now, into: &actions)
        }
        if presence.inFlight == nil, now >= presence.nextAt { checkPresence(now: now, into: &actions) }
        wake(at: presence.inFlight.map { $0.sentAt + settings.requestTimeout } ?? presence.nextAt, into: &actions)
        if case .leading = state { wake(at: presence.confirmedUntil, into: &actions) }
    }

    private mutating func handlePresence(_ input: Input, now: Duration, into actions: inout [Action]) {
        guard let quorum = settings.quorum, let request = presence.inFlight else { return }
        switch input {
        case .presence(let id, let alive) where id == request.id:
            presence.inFlight = nil
            presence.nextAt = request.sentAt + settings.renewInterval
            let wasMet = presence.met
            presence.met = alive >= quorum
            if presence.met { presence.confirmedUntil = request.sentAt + settings.ttl }
            switch state {
            case .leading(let leading) where !presence.met:
                stepDownForQuorum(leading, now: now, into: &actions)
            case .following(var following) where presence.met && !wasMet && following.inFlight == nil:
                sendAcquire(&following, now: now, into: &actions)
                state = .following(following)
            default:
                break
            }
        case .presenceFailed(let id, let error) where id == request.id:
            presence.inFlight = nil
            presence.nextAt = now + min(delay(failures: 1), settings.renewInterval)
            actions.append(.storeError(error))
        default:
            return
        }
        guard !isFinished else { return }
        wake(at: presence.nextAt, into: &actions)
        if case .leading = state { wake(at: presence.confirmedUntil, into: &actions) }
    }

    /// Demotes for lack of quorum, then gives the key back once the term's work has returned, so a candidate that
    /// has a quorum can take it at once.
    private mutating func stepDownForQuorum(_ leading: Leading, now: Duration, into actions: inout [Action]) {
        demote(leading, .quorumLost, now: now, into: &actions)
        actions.append(.release(Release(lease: leading.lease, workDeadline: leading.deadline)))
    }

    // MARK: Following

    private mutating func handleFollowing(
        _ following: inout Following,
        _ input: Input,
        now: Duration,
        into actions: inout [Action]
    ) {
        switch input {
        case .acquired(let id, let lease):
            guard let request = following.inFlight, request.id == id else { return }
            following.inFlight = nil
            let (deadline, renewAt) = term(of: lease, sentAt: request.sentAt)
            if now >= deadline {
                // The answer came too late to act on safely. It is not released: the answer may be a renewal of a
                // term whose work is still stopping (demoted at its deadline), and a release sent now could reach
                // the store after the next acquire has taken the same term again. That next acquire, soon, either
                // takes the term again (same holder) or finds it expired.
                following.failures += 1
                following.retryAt = now + delay(failures: following.failures)
                state = .following(following)
                wake(at: following.retryAt!, into: &actions)
                return
            }
            // The term's own ttl is the configured one: renews ask for it.
            var granted = lease
            granted.ttl = settings.ttl
            if !granted.leaderInfo.isSameTerm(as: following.leader) {
                actions.append(.leaderChanged(granted.leaderInfo))
            }
            let leading = Leading(
                lease: granted,
                deadline: deadline,
                renewAt: renewAt,
                inFlight: nil,
                failures: 0
            )
            state = .leading(leading)
            actions.append(.elected(granted))
            wake(at: min(leading.renewAt, leading.deadline), into: &actions)

        case .held(let id, let info):
            guard let request = following.inFlight, request.id == id else { return }
            following.inFlight = nil
            following.detached = false
            following.failures = 0
            if following.freedDuringRequest {
                // The refusal may be older than the release the feed reported meanwhile (the feed will not
                // report it again): ask once more rather than wait for a wake-up that already came.
                following.freedDuringRequest = false
                sendAcquire(&following, now: now, into: &actions)
                state = .following(following)
                return
            }
            if !info.isSameTerm(as: following.leader) {
                following.leader = info
                actions.append(.leaderChanged(info))
            }
            // While the change feed works it wakes this candidate when the key is released or expires; polling
            // is only the fallback for a feed that is down.
            following.retryAt = feedHealthy ? nil : now + settings.pollInterval
            if let retryAt = following.retryAt { wake(at: retryAt, into: &actions) }
            armCheck(&following, now: now, into: &actions)
            state = .following(following)

        case .acquireFailed(let id, let error):
            guard let request = following.inFlight, request.id == id else { return }
            following.inFlight = nil
            following.freedDuringRequest = false
            failAcquire(&following, error, now: now, into: &actions)

        case .renewed, .renewLost, .renewFailed:
            // Answers to renews of a term already given up: nothing to act on.
            state = .following(following)

        case .checked(let id, let info):
            guard let check = following.check, check.id == id else {
                state = .following(following)
                return
            }
            following.check = nil
            note(info, in: &following, into: &actions)
            if info == nil, following.inFlight == nil {
                // The key is free although the feed said nothing: it may have died silently. Campaign now.
                following.failures = 0
                sendAcquire(&following, now: now, into: &actions)
            } else {
                armCheck(&following, now: now, into: &actions)
            }
            state = .following(following)

        case .checkFailed(let id, let error):
            guard let check = following.check, check.id == id else {
                state = .following(following)
                return
            }
            following.check = nil
            actions.append(.storeError(error))
            retryCheck(&following, now: now, into: &actions)
            state = .following(following)

        case .presence, .presenceFailed:
            // Handled by `handlePresence` before the role's handler.
            state = .following(following)

        case .observed(let info):
            note(info, in: &following, into: &actions)
            if info == nil, following.inFlight == nil {
                following.failures = 0
                sendAcquire(&following, now: now, into: &actions)
            } else if info == nil {
                following.freedDuringRequest = true
            } else if info != nil, following.failures == 0 {
                // A poll planned while the feed was not yet delivering: the working feed replaces it (a retry
                // after a store error stays planned), and a check once per ttl watches the feed itself.
                following.retryAt = nil
                armCheck(&following, now: now, into: &actions)
            }
            state = .following(following)

        case .feedLost:
            if following.inFlight == nil, following.retryAt == nil {
                following.retryAt = now + settings.pollInterval
                wake(at: following.retryAt!, into: &actions)
            }
            state = .following(following)

        case .tick:
            if let request = following.inFlight, now >= request.sentAt + settings.requestTimeout {
                following.inFlight = nil
                failAcquire(
                    &following, .timeout("acquire got no answer within \(settings.requestTimeout)"), now: now,
                    into: &actions)
                return
            }
            if following.inFlight == nil, let retryAt = following.retryAt, now >= retryAt {
                sendAcquire(&following, now: now, into: &actions)
            }
            if let check = following.check, now >= check.sentAt + settings.requestTimeout {
                following.check = nil
                actions.append(
                    .storeError(.timeout("a check of the store got no answer within \(settings.requestTimeout)")))
                retryCheck(&following, now: now, into: &actions)
            }
            if following.inFlight == nil, following.check == nil, let checkAt = following.checkAt, now >= checkAt {
                let id = takeRequestID()
                following.checkAt = nil
                following.check = Request(id: id, sentAt: now)
                actions.append(.check(id))
            }
            state = .following(following)
            scheduleFollowing(following, into: &actions)

        case .resign:
            if let request = following.inFlight {
                let until = now + settings.resignWait
                state = .resigning(request, until: until)
                wake(at: until, into: &actions)
            } else {
                state = .finished
                actions.append(.finish(release: nil))
            }

        case .stop:
            state = .finished
            actions.append(.finish(release: nil))
        }
    }

    /// A leader seen by the feed or a check: the store is reachable, and a different term is reported.
    private func note(_ info: LeaderInfo?, in following: inout Following, into actions: inout [Action]) {
        following.detached = false
        if (info == nil) != (following.leader == nil) || (info.map { !$0.isSameTerm(as: following.leader) } ?? false) {
            following.leader = info
            actions.append(.leaderChanged(info))
        }
    }

    private mutating func sendAcquire(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        // Quorum mode: no campaign without a quorum; the presence check that finds one sends the acquire.
        if settings.quorum != nil, !presence.met {
            following.retryAt = nil
            return
        }
        let id = takeRequestID()
        following.inFlight = Request(id: id, sentAt: now)
        following.retryAt = nil
        following.freedDuringRequest = false
        following.checkAt = nil
        actions.append(.acquire(id))
        wake(at: now + settings.requestTimeout, into: &actions)
    }

    private mutating func failAcquire(
        _ following: inout Following,
        _ error: BatonError,
        now: Duration,
        into actions: inout [Action]
    ) {
        following.failures += 1
        following.detached = true
        following.retryAt = now + delay(failures: following.failures)
        state = .following(following)
        actions.append(.storeError(error))
        wake(at: following.retryAt!, into: &actions)
    }

    private mutating func scheduleFollowing(_ following: Following, into actions: inout [Action]) {
        if let request = following.inFlight {
            wake(at: request.sentAt + settings.requestTimeout, into: &actions)
        } else if let retryAt = following.retryAt {
            wake(at: retryAt, into: &actions)
        }
        if let check = following.check {
            wake(at: check.sentAt + settings.requestTimeout, into: &actions)
        } else if following.inFlight == nil, let checkAt = following.checkAt {
            wake(at: checkAt, into: &actions)
        }
    }

    /// After a failed check: tries again after a backoff, unless an acquire in flight answers the question anyway.
    private mutating func retryCheck(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        guard following.inFlight == nil else { return }
        let checkAt = now + min(delay(failures: 1), settings.ttl)
        following.checkAt = checkAt
        wake(at: checkAt, into: &actions)
    }

    /// While the feed looks healthy and nothing is asked of the store, plans the next check of the store (one read)
    /// a ttl from now, unless one is planned already.
    private mutating func armCheck(_ following: inout Following, now: Duration, into actions: inout [Action]) {
        guard feedHealthy, following.inFlight == nil, following.check == nil, following.checkAt == nil else { return }
        let checkAt = now + settings.ttl
        following.checkAt = checkAt
        wake(at: checkAt, into: &actions)
    }

    // MARK: Leading

    private mutating func handleLeading(
        _ leading: inout Leading,
        _ input: Input,
        now: Duration,
        into actions: inout [Action]
    ) {
        // The safety rule comes first: past the deadline nothing else matters.
        if now >= leading.deadline, !isStopInput(input) {
            demote(leading, .deadlineReached, now: now, into: &actions)
            return
        }
        switch input {
        case .renewed(let id, let lease):
            guard let request = leading.inFlight, request.id == id else { break }
            leading.inFlight = nil
            leading.failures = 0
            (leading.deadline, leading.renewAt) = term(of: lease, sentAt: request.sentAt)
            leading.lease = lease
            leading.lease.ttl = settings.ttl
            if now >= leading.deadline {
                demote(leading, .deadlineReached, now: now, into: &actions)
                return
            }
            actions.append(.extended(leading.lease))

        case .renewLost(let id):
            guard let request = leading.inFlight, request.id == id else { break }
            demote(leading, .lost, now: now, into: &actions)
            return

        case .renewFailed(let id, let error):
            guard let request = leading.inFlight, request.id == id else { break }
            leading.inFlight = nil
            leading.failures += 1
            leading.renewAt = now + min(delay(failures: leading.failures), settings.renewInterval)
            actions.append(.storeError(error))

        case .observed(let info):
            let sameTerm = info.map { $0.holder == leading.lease.holder && $0.token == leading.lease.token } ?? false
            if !sameTerm, leading.inFlight == nil {
                // The store may say the term is over; a renew settles it either way.
                leading.renewAt = now
            }

        case .tick:
            if let request = leading.inFlight, now >= request.sentAt + settings.requestTimeout {
                leading.inFlight = nil
                leading.failures += 1
                leading.renewAt = now
                actions.append(.storeError(.timeout("renew got no answer within \(settings.requestTimeout)")))
            }

        case .acquired, .held, .acquireFailed, .feedLost, .presence, .presenceFailed, .checked, .checkFailed:
            break

        case .resign, .stop:
            // Demote first (the work is cancelled); the release follows once the work has returned.
            state = .finished
            actions.append(.demoted(leading.lease, .resigned))
            actions.append(.finish(release: Release(lease: leading.lease, workDeadline: leading.deadline)))
            return
        }
        if leading.inFlight == nil, now >= leading.renewAt {
            let id = takeRequestID()
            leading.inFlight = Request(id: id, sentAt: now)
            actions.append(.renew(id, leading.lease))
        }
        state = .leading(leading)
        var next = leading.deadline
        if let request = leading.inFlight {
            next = min(next, request.sentAt + settings.requestTimeout)
        } else {
            next = min(next, leading.renewAt)
        }
        wake(at: next, into: &actions)
    }

    /// The deadline and the next renew of a term granted by a request sent at `sentAt`: the configured ttl, or the
    /// shorter time the store promised (``Lease/ttl``). A shortened term is renewed early enough to leave as much
    /// time between its renew and its deadline as a full term has (at once, if less is left).
    private func term(of lease: Lease, sentAt: Duration) -> (deadline: Duration, renewAt: Duration) {
        guard lease.ttl < settings.ttl else {
            return (sentAt + settings.ttl - settings.margin, sentAt + settings.renewInterval)
        }
        let renewIn = max(.zero, lease.ttl - (settings.ttl - settings.renewInterval))
        return (sentAt + lease.ttl - settings.margin, sentAt + renewIn)
    }

    private func isStopInput(_ input: Input) -> Bool {
        switch input {
        case .resign, .stop: true
        default: false
        }
    }

    private mutating func demote(
        _ leading: Leading, _ reason: DemotionReason, now: Duration, into actions: inout [Action]
    ) {
        actions.append(.demoted(leading.lease, reason))
        var following = Following(
            leader: reason == .lost ? nil : leading.lease.leaderInfo,
            detached: reason == .deadlineReached,
            inFlight: nil,
            retryAt: nil,
            failures: 0
        )
        sendAcquire(&following, now: now, into: &actions)
        state = .following(following)
    }

    // MARK: Resigning

    private mutating func handleResigning(
        _ request: Request,
        until: Duration,
        _ input: Input,
        now: Duration
    ) -> [Action] {
        switch input {
        case .acquired(let id, let lease) where id == request.id:
            state = .finished
            let deadline = term(of: lease, sentAt: request.sentAt).deadline
            return [.finish(release: Release(lease: lease, workDeadline: deadline))]
        case .held(let id, _) where id == request.id, .acquireFailed(let id, _) where id == request.id:
            state = .finished
            return [.finish(release: nil)]
        case .stop:
            state = .finished
            return [.finish(release: nil)]
        case .tick where now >= until:
            state = .finished
            return [.finish(release: nil)]
        case .tick:
            var actions: [Action] = []
            wake(at: until, into: &actions)
            return actions
        default:
            return []
        }
    }

    // MARK: Helpers

    private mutating func takeRequestID() -> RequestID {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    /// Asks for a tick at `time` unless an earlier or equal one is already pending.
    private mutating func wake(at time: Duration, into actions: inout [Action]) {
        if let pending = scheduledWake, pending <= time { return }
        scheduledWake = time
        actions.append(.schedule(at: time))
    }

    private mutating func delay(failures: Int) -> Duration {
        let nominal = min(settings.backoff.nominalDelay(attempt: failures), settings.ttl)
        let jitter = settings.backoff.jitter * random.nextUnit()
        return nominal * (1 - jitter)
    }
}

/// A small, fast, seedable random number generator (SplitMix64), so tests can replay a run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in 0..<1.
    mutating func nextUnit() -> Double {
        Double(next() >> 11) / Double(1 << 53)
    }
}
