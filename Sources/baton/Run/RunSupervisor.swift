import Baton
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What `baton run` is doing, shared by the leadership loop, the signal handler and the event reporter, so that
/// a stop signal is handled the right way whenever it arrives:
///
/// - while waiting for leadership: the elector resigns (releasing a lease an acquire in flight may still grant);
/// - while the command runs: the signal is forwarded to its process group, SIGKILL follows after the grace, and
///   the lease is released only once the command is gone — never before, or a successor could start while the
///   command still runs.
///
/// A signal that arrives before the elector's campaign has started finds nothing to resign; the next event of
/// the campaign (there is always one: elected, a leader seen, or a store error) repeats the resign.
///
/// It also keeps the keeper's watchdog fed: the command is launched with its term's kill time (see
/// ``launch(_:for:entry:)``), and each renewal moves it on (``renewed(_:)``). The launch is decided under the lock
/// that demotions take, so a command is never launched for a term already known to be over.
final class RunSupervisor: Sendable {
    private enum Phase {
        case waiting
        case starting
        case running(ChildProcess)
    }

    /// What came of ``launch(_:for:entry:)``.
    enum LaunchDecision {
        /// A stop signal came first: nothing was launched.
        case stopping
        /// The term is over (demoted, or its deadline has passed): nothing was launched.
        case termOver
        /// The launch was written to the keeper: 0, or the errno of the failed write (see
        /// ``ChildProcess/launchOutcome(written:)``).
        case sent(written: Int32)
    }

    private struct State {
        var phase = Phase.waiting
        var stopSignal: Int32?
        var lastTerm: (token: FencingToken, child: ChildProcess?)?
        var endedCommand: ChildProcess.Exit?
        var campaignSeen = false
        var campaignWaiters: [CheckedContinuation<Void, Never>] = []
        var demotion: (token: FencingToken, reason: DemotionReason)?
        var demotionWaiters: [Int: (token: FencingToken, continuation: CheckedContinuation<DemotionReason?, Never>)] =
            [:]
        var nextWaiter = 0
    }

    /// How long the command has between the first signal and SIGKILL.
    let grace: Duration
    private let resignOnLoss: Bool
    private let resign: @Sendable () -> Void
    private let timeLeft: @Sendable (FencingToken) -> Duration?
    private let state = Mutex(State())

    /// - Parameters:
    ///   - resignOnLoss: leave the election as soon as the store refuses a renewal (when `baton` is to exit after
    ///     a loss), so that the elector does not take the key again while the command is being stopped.
    ///   - resign: steps the elector down (nothing in round mode).
    ///   - timeLeft: the time left until the deadline of the term of a token on the elector's clock, read live; nil
    ///     when not leading in that term (always nil in round mode, where no term ends).
    init(
        grace: Duration,
        resignOnLoss: Bool = false,
        resign: @escaping @Sendable () -> Void = {},
        timeLeft: @escaping @Sendable (FencingToken) -> Duration? = { _ in nil }
    ) {
        self.grace = grace
        self.resignOnLoss = resignOnLoss
        self.resign = resign
        self.timeLeft = timeLeft
    }

    /// The kill time of the term of `token`: the elector's deadline plus the grace, on `CLOCK_BOOTTIME`; nil when
    /// not leading in that term or past its deadline. The clock is read before the time left, so that the kill time
    /// errs early.
    private func killTime(of token: FencingToken) -> BootTime? {
        let now = BootTime.now
        guard let left = timeLeft(token), left > .zero else { return nil }
        return now + left + grace
    }

    /// The first stop signal received, if any.
    var stopSignal: Int32? { state.withLock { $0.stopSignal } }

    /// `baton` received a job-control signal: SIGTSTP, SIGTTIN or SIGTTOU stop the command's group (with SIGTSTP,
    /// which the keeper blocks, so its watchdog keeps running) and then `baton` itself (SIGSTOP); SIGCONT, which
    /// continued `baton`, continues the group.
    func jobControl(_ signal: Int32) {
        let child = state.withLock { state -> ChildProcess? in
            switch state.phase {
            case .running(let child): return child
            // Launched, its exec maybe not yet reported: the command may run already.
            case .starting: return state.lastTerm?.child
            case .waiting: return nil
            }
        }
        if signal == SIGCONT {
            child?.signalGroup(SIGCONT)
        } else {
            child?.signalGroup(SIGTSTP)
            raise(SIGSTOP)
        }
    }

    /// `baton` received `signal` (SIGTERM, SIGINT or SIGHUP).
    func received(_ signal: Int32) {
        let (child, waiters) = state.withLock { state -> (ChildProcess?, [CheckedContinuation<Void, Never>]) in
            if state.stopSignal == nil { state.stopSignal = signal }
            defer { state.campaignWaiters = [] }
            if case .running(let child) = state.phase { return (child, state.campaignWaiters) }
            return (nil, state.campaignWaiters)
        }
        for waiter in waiters { waiter.resume() }
        if let child {
            child.stop(signal, grace: grace)
        } else {
            resignIfStopping()
        }
    }

    /// The elector reported something, so its campaign runs: wake ``waitForCampaign()`` and repeat a resign that
    /// came too early.
    func campaignProgressed() {
        let waiters = state.withLock { state in
            state.campaignSeen = true
            defer { state.campaignWaiters = [] }
            return state.campaignWaiters
        }
        for waiter in waiters { waiter.resume() }
        resignIfStopping()
    }

    /// Waits until the elector reported its first event (so its `run()` owns the campaign) or a stop signal came.
    func waitForCampaign() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.campaignSeen || state.stopSignal != nil { return true }
                state.campaignWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func resignIfStopping() {
        let resign = state.withLock { state -> Bool in
            guard state.stopSignal != nil, case .waiting = state.phase else { return false }
            return true
        }
        if resign { self.resign() }
    }

    /// The latest term led, and the command started in it, if any.
    var lastTerm: (token: FencingToken, child: ChildProcess?)? { state.withLock { $0.lastTerm } }

    /// A term of leadership began (before ``beginStarting()``).
    func elected(_ lease: Lease) {
        state.withLock { $0.lastTerm = (lease.token, nil) }
    }

    /// The elector reported its election in the term of `lease` (an event, in order with its demotions).
    ///
    /// A demotion seen earlier for the same token belongs to an earlier hold of that term: the elector can take its
    /// own term again after a deadline demotion (the store kept it, e.g. across a restart of the store). It no longer
    /// counts, or no command would ever be launched, nor its kill time moved on, in the term held again.
    func electionReported(_ lease: Lease) {
        state.withLock { state in
            if state.demotion?.token == lease.token { state.demotion = nil }
        }
    }

    /// Leadership began: returns whether to start the command (false once a stop signal arrived).
    func beginStarting() -> Bool {
        state.withLock { state in
            guard state.stopSignal == nil, case .waiting = state.phase else { return false }
            state.phase = .starting
            return true
        }
    }

    /// Launches `child` in the term of `lease` with `entry` in its environment, the term's kill time and the grace,
    /// unless a stop signal arrived, the term's demotion was seen, or the elector no longer leads or is past its
    /// deadline — decided under the lock the demotion takes. See ``ChildProcess/sendLaunch(adding:term:killAt:grace:)``.
    func launch(_ child: ChildProcess, for lease: Lease, entry: String) -> LaunchDecision {
        state.withLock { state in
            guard state.stopSignal == nil, case .waiting = state.phase else { return .stopping }
            if let demotion = state.demotion, demotion.token == lease.token { return .termOver }
            guard !Task.isCancelled, let killAt = killTime(of: lease.token) else { return .termOver }
            state.phase = .starting
            state.lastTerm = (lease.token, child)
            return .sent(
                written: child.sendLaunch(
                    adding: entry, term: UInt64(bitPattern: lease.token), killAt: killAt, grace: grace))
        }
    }

    /// The term of `lease` was renewed (or began): the keeper of its command gets the new kill time. Nothing is
    /// sent for a term whose demotion was seen, or when the elector no longer leads.
    func renewed(_ lease: Lease) {
        state.withLock { state in
            guard let term = state.lastTerm, term.token == lease.token, let child = term.child else { return }
            if let demotion = state.demotion, demotion.token == lease.token { return }
            guard let killAt = killTime(of: lease.token) else { return }
            child.extend(killAt: killAt, term: UInt64(bitPattern: lease.token))
        }
    }

    /// The command started: a stop signal that arrived while it was being started is forwarded now, and a
    /// demotion of its term seen meanwhile stops it.
    func started(_ child: ChildProcess) {
        let (signal, demoted) = state.withLock { state -> (Int32?, Bool) in
            state.phase = .running(child)
            if state.lastTerm != nil { state.lastTerm?.child = child }
            let demoted = state.demotion != nil && state.demotion?.token == state.lastTerm?.token
            return (state.stopSignal, demoted)
        }
        if let signal {
            child.stop(signal, grace: grace)
        } else if demoted {
            child.stop(SIGTERM, grace: grace, once: true)
        }
    }

    /// The command is gone (or could not be started).
    func finished() {
        state.withLock { $0.phase = .waiting }
    }

    /// The command ended by itself or on a stop signal (not because leadership ended), and the run ends with it.
    func ended(_ exit: ChildProcess.Exit) {
        state.withLock { $0.endedCommand = exit }
    }

    /// How the command ended, if it ended by itself or on a stop signal (see ``ended(_:)``).
    var endedCommand: ChildProcess.Exit? { state.withLock { $0.endedCommand } }

    // MARK: Demotion reasons

    /// The elector demoted itself from the term of `lease` for `reason`.
    ///
    /// With `resignOnLoss`, a `lost` term makes the elector resign at once, although the command may still be
    /// stopping: the store said the term is over, so anything the elector could hold now is a new term that no
    /// command uses. Never after `deadlineReached`: then the elector's next acquire may renew the old term, which
    /// must stay in the store until the command is gone.
    func demoted(_ lease: Lease, _ reason: DemotionReason) {
        if resignOnLoss && reason == .lost { resign() }
        let (waiters, child) = state.withLock { state in
            state.demotion = (lease.token, reason)
            let waiting = state.demotionWaiters.filter { $0.value.token == lease.token }
            for id in waiting.keys { state.demotionWaiters[id] = nil }
            // The term's command is stopped here too, not only by the cancellation of its work.
            var child: ChildProcess?
            if case .running(let running) = state.phase, state.lastTerm?.token == lease.token { child = running }
            return (waiting.values.map(\.continuation), child)
        }
        child?.stop(SIGTERM, grace: grace, once: true)
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    /// Why the term of `token` ended, waiting at most `timeout` for the event reporter to have seen it.
    func demotionReason(of token: FencingToken, within timeout: Duration) async -> DemotionReason? {
        await withCheckedContinuation { continuation in
            let (known, id) = state.withLock { state -> (DemotionReason??, Int) in
                if let demotion = state.demotion, demotion.token == token { return (.some(demotion.reason), 0) }
                state.nextWaiter += 1
                state.demotionWaiters[state.nextWaiter] = (token, continuation)
                return (nil, state.nextWaiter)
            }
            if let known {
                continuation.resume(returning: known)
                return
            }
            let milliseconds = Int(max(0, timeout.batonMilliseconds))
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [self] in
                state.withLock { $0.demotionWaiters.removeValue(forKey: id) }?.continuation.resume(returning: nil)
            }
        }
    }
}
