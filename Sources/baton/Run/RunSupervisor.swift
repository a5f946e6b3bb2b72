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

/// Runs ``RunStateMachine`` for `baton run`: shared by the leadership loop, the signal handlers and the elector's
/// event stream, it feeds the machine each of their inputs with the time now and performs the actions it returns
/// — on the command's ``ChildProcess`` (launch, kill times, signals), on the elector (resign) and on standard
/// error (through a ``StatusReporter``). It holds no decision of its own.
///
/// A launch is decided and written to the keeper under the lock that demotions take, so a command is never
/// launched for a term already known to be over; kill times are written under it too, so they reach the keeper in
/// the order decided.
final class RunSupervisor: Sendable {
    /// What came of ``launch(_:for:entries:)``.
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
        var machine: RunStateMachine
        /// The command of the latest term (or of the round), once launched.
        var child: ChildProcess?
        var campaignWaiters: [CheckedContinuation<Void, Never>] = []
        var demotionWaiters: [Int: (token: FencingToken, continuation: CheckedContinuation<DemotionReason?, Never>)] =
            [:]
        var nextWaiter = 0
    }

    /// How long the command has between the first signal and SIGKILL.
    var grace: Duration { settings.grace }
    private let settings: RunStateMachine.Settings
    private let resign: @Sendable () -> Void
    private let timeLeft: @Sendable (FencingToken) -> Duration?
    private let reporter: StatusReporter
    /// Whether a job-control stop stops `baton` itself (false when several supervisors share one `baton`, and it
    /// stops itself once for all of them).
    private let stopsSelf: Bool
    private let state: Mutex<State>

    /// - Parameters:
    ///   - resignOnLoss: leave the election as soon as the store refuses a renewal (when `baton` is to exit after
    ///     a loss), so that the elector does not take the key again while the command is being stopped.
    ///   - retry: campaign again after a loss (`--retry`).
    ///   - resign: steps the elector down (nothing in round mode).
    ///   - timeLeft: the time left until the deadline of the term of a token on the elector's clock, read live; nil
    ///     when not leading in that term (always nil in round mode, where no term ends).
    ///   - reporter: prints the status lines and errors.
    ///   - stopsSelf: whether a job-control stop (Ctrl-Z) stops `baton` after the command's group.
    init(
        grace: Duration,
        resignOnLoss: Bool = false,
        retry: Bool = false,
        resign: @escaping @Sendable () -> Void = {},
        timeLeft: @escaping @Sendable (FencingToken) -> Duration? = { _ in nil },
        reporter: StatusReporter = StatusReporter(key: "", holder: "", command: "", quiet: true),
        stopsSelf: Bool = true
    ) {
        settings = RunStateMachine.Settings(
            grace: grace, resignOnLoss: resignOnLoss, retry: retry, holder: reporter.holder)
        self.resign = resign
        self.timeLeft = timeLeft
        self.reporter = reporter
        self.stopsSelf = stopsSelf
        state = Mutex(State(machine: RunStateMachine(settings: settings)))
    }

    // MARK: Feeding the machine

    /// Feeds `input` at the time now and performs its actions; returns those that belong to the caller (the
    /// launch decision, the term's end, the campaign's next step).
    ///
    /// The actions on the keeper (a kill time, and through `underLock` the launch) are performed under the lock.
    @discardableResult
    private func handle(
        _ input: RunStateMachine.Input,
        now: BootTime = .now,
        underLock: (inout State, RunStateMachine.Action) -> Void = { _, _ in }
    ) -> [RunStateMachine.Action] {
        let (actions, child, campaignWaiters, demotionWaiters) = state.withLock { state in
            let actions = state.machine.handle(input, now: now)
            for action in actions {
                if case .moveKillTime(let term, let killAt) = action {
                    state.child?.extend(killAt: killAt, term: UInt64(bitPattern: term))
                }
                underLock(&state, action)
            }
            var campaignWaiters: [CheckedContinuation<Void, Never>] = []
            if state.machine.campaignReady {
                campaignWaiters = state.campaignWaiters
                state.campaignWaiters = []
            }
            var demotionWaiters: [(CheckedContinuation<DemotionReason?, Never>, DemotionReason)] = []
            for (id, waiter) in state.demotionWaiters {
                guard let reason = state.machine.demotionReason(of: waiter.token) else { continue }
                demotionWaiters.append((waiter.continuation, reason))
                state.demotionWaiters[id] = nil
            }
            return (actions, state.child, campaignWaiters, demotionWaiters)
        }
        var remaining: [RunStateMachine.Action] = []
        for action in actions {
            switch action {
            case .resign: resign()
            // The grace counts from the signal; ChildProcess keeps SIGKILL by the keeper's kill time too.
            case .stopChild(let signal, let grace, let once): child?.stop(signal, grace: grace, once: once)
            case .signalGroup(let signal): child?.signalGroup(signal)
            case .stopSelf: if stopsSelf { raise(SIGSTOP) }
            case .report(let report): reporter.print(report)
            case .moveKillTime: break
            default: remaining.append(action)
            }
        }
        for waiter in campaignWaiters { waiter.resume() }
        for (waiter, reason) in demotionWaiters { waiter.resume(returning: reason) }
        return remaining
    }

    /// The deadline of the term of `token` on `CLOCK_BOOTTIME`, and the time it was read against: the clock is read
    /// before the time left, so that the deadline errs early.
    private func deadline(of token: FencingToken) -> (deadline: BootTime?, now: BootTime) {
        let now = BootTime.now
        return (timeLeft(token).map { now + $0 }, now)
    }

    // MARK: Signals

    /// The first stop signal received, if any.
    var stopSignal: Int32? { state.withLock { $0.machine.stopSignal } }

    /// `baton` received `signal` (SIGTERM, SIGINT or SIGHUP).
    func received(_ signal: Int32) {
        handle(.stopSignal(signal))
    }

    /// `baton` received a job-control signal: SIGTSTP, SIGTTIN or SIGTTOU stop the command's group and then
    /// `baton` itself; SIGCONT, which continued `baton`, continues the group.
    func jobControl(_ signal: Int32) {
        handle(.jobControl(signal))
    }

    // MARK: Elector events

    /// Feeds the events of one elector to the machine until the stream ends or the task is cancelled.
    func follow(_ events: AsyncStream<ElectorEvent>) async {
        for await event in events {
            switch event {
            case .leaderChanged(let info):
                handle(.leaderSeen(info, clockTime: StatusReporter.clockTime()))
            case .elected(let lease):
                electionReported(lease)
            case .renewed(let lease):
                renewed(lease)
            case .demoted(let lease, let reason):
                demoted(lease, reason)
            case .storeError(let error):
                handle(.storeError(error))
            }
        }
    }

    /// Waits until the elector reported its first event (so its `run()` owns the campaign) or a stop signal came.
    func waitForCampaign() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.machine.campaignReady { return true }
                state.campaignWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The elector reported its election in the term of `lease` (see ``RunStateMachine/Input/electionReported(_:)``).
    func electionReported(_ lease: Lease) {
        handle(.electionReported(lease))
    }

    /// The term of `lease` was renewed: the keeper of its command gets the new kill time, if the machine says so.
    func renewed(_ lease: Lease) {
        let (deadline, now) = deadline(of: lease.token)
        handle(.renewed(lease, deadline: deadline), now: now)
    }

    /// The elector demoted itself from the term of `lease` for `reason`.
    func demoted(_ lease: Lease, _ reason: DemotionReason) {
        handle(.demoted(lease, reason))
    }

    /// Why the term of `token` ended, waiting at most `timeout` for the event stream to have reported it.
    func demotionReason(of token: FencingToken, within timeout: Duration) async -> DemotionReason? {
        await withCheckedContinuation { continuation in
            let (known, id) = state.withLock { state -> (DemotionReason??, Int) in
                if let reason = state.machine.demotionReason(of: token) { return (.some(reason), 0) }
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

    // MARK: The command

    /// The latest term led, and the command launched in it, if any.
    var lastTerm: (token: FencingToken, child: ChildProcess?)? {
        state.withLock { state in
            guard let term = state.machine.lastTerm else { return nil }
            return (term.token, term.launched ? state.child : nil)
        }
    }

    /// A term of leadership began (before ``launch(_:for:entries:)``).
    func elected(_ lease: Lease) {
        handle(.termBegan(lease))
    }

    /// Round mode: returns whether to start the command (false once a stop signal arrived).
    func beginStarting() -> Bool {
        handle(.launchAsked(term: nil, deadline: nil, cancelled: false)).contains(.launch(term: nil, killAt: nil))
    }

    /// Launches `child` in the term of `lease` with `entries` in its environment, the term's kill time and the grace,
    /// if the machine decides so (see ``RunStateMachine``). See ``ChildProcess/sendLaunch(adding:term:killAt:grace:)``.
    func launch(_ child: ChildProcess, for lease: Lease, entries: [String]) -> LaunchDecision {
        let cancelled = Task.isCancelled
        let (deadline, now) = deadline(of: lease.token)
        var decision = LaunchDecision.termOver
        handle(.launchAsked(term: lease.token, deadline: deadline, cancelled: cancelled), now: now) { state, action in
            switch action {
            case .launch(let term?, let killAt):
                state.child = child
                decision = .sent(
                    written: child.sendLaunch(
                        adding: entries, term: UInt64(bitPattern: term), killAt: killAt, grace: grace))
            case .refuseLaunch(.stopping): decision = .stopping
            default: break
            }
        }
        return decision
    }

    /// The command started: a stop signal that arrived while it was being started is forwarded now, and a
    /// demotion of its term seen meanwhile stops it.
    func started(_ child: ChildProcess) {
        state.withLock { $0.child = child }
        handle(.started)
    }

    /// The term's work was cancelled: its command is stopped.
    func workCancelled() {
        handle(.workCancelled)
    }

    /// The command never ran (refused, not executable) or is gone.
    func finished() {
        handle(.commandGone)
    }

    /// The command ended and nothing of its group is left (`watchdogSignal`: what its keeper's watchdog had sent);
    /// returns what the term's work returns with.
    func commandEnded(_ exit: ChildProcess.Exit, watchdogSignal: Int32?) -> RunStateMachine.TermEnd {
        let actions = handle(.commandEnded(exit, byWatchdog: watchdogSignal != nil, cancelled: Task.isCancelled))
        for case .finishTerm(let end) in actions { return end }
        return .exited(exit)
    }

    /// How the command ended, if it ended by itself or on a stop signal.
    var endedCommand: ChildProcess.Exit? { state.withLock { $0.machine.endedCommand } }

    // MARK: The campaign

    /// What follows a campaign's beginning or end (see ``RunStateMachine/Input/campaignAsked`` and
    /// ``RunStateMachine/Input/campaignEnded(_:)``).
    enum Next {
        /// Go on (campaign).
        case proceed
        /// Campaign again after this pause.
        case campaignAgain(after: Duration?)
        /// Say why the last term was lost, then call ``lossReported()``.
        case reportLoss
        /// Pass the cancellation on.
        case propagateCancellation
        /// End with this status.
        case exit(Int32)
    }

    /// A campaign is about to begin.
    func campaignAsked() -> Next { next(handle(.campaignAsked)) }

    /// The campaign ended this way.
    func campaignEnded(_ end: RunStateMachine.CampaignEnd) -> Next { next(handle(.campaignEnded(end))) }

    /// The loss was reported.
    func lossReported() -> Next { next(handle(.lossReported)) }

    private func next(_ actions: [RunStateMachine.Action]) -> Next {
        for action in actions {
            switch action {
            case .exit(let code): return .exit(code)
            case .campaignAgain(let pause): return .campaignAgain(after: pause)
            case .reportLoss: return .reportLoss
            case .propagateCancellation: return .propagateCancellation
            default: continue
            }
        }
        return .proceed
    }
}
