import Baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The decisions of `baton run -- CMD`, with no I/O, no lock and no clock of its own.
///
/// ``RunSupervisor`` feeds it what happened (a stop or job-control signal, an elector event, the launch asked for,
/// the keeper's answer, the command's end, how the campaign ended) with the time now on `CLOCK_BOOTTIME` (the
/// clock `baton` and its keeper share), and performs the actions it returns. So every decision is a function of
/// the inputs and the times given:
///
/// - a command is launched only for a term that is not over: no stop signal came, the term's demotion was not
///   seen, and the term's deadline (the elector's, `t0 + ttl − margin − grace`) is still ahead; its keeper gets the
///   kill time `deadline + grace`, and each renewal of that term moves the kill time on — only later, and only for
///   the term the command was launched in;
/// - a demotion of the command's term stops it (SIGTERM, SIGKILL at the kill time); the term's work returns, and
///   the elector releases the term, only once the command's group is gone (``Input/commandEnded(_:byWatchdog:cancelled:)``);
/// - a demotion seen for a token belongs to an earlier hold of that term once the elector reports its election in
///   it again (the store kept the term, e.g. across a restart of the store): it no longer refuses launches then;
/// - a stop signal is forwarded to a running command, or makes the elector resign while waiting;
/// - the exit status: the command's own when it ran to its end, 128 + the signal when one stopped `baton` first,
///   75 when the term was lost (or, with `--retry`, campaign again).
struct RunStateMachine: Sendable {
    /// What does not change during a run.
    struct Settings: Sendable {
        /// How long the command has between SIGTERM and SIGKILL.
        var grace: Duration
        /// Leave the election as soon as the store refuses a renewal (when `baton` exits after a loss).
        var resignOnLoss = false
        /// Campaign again after a loss (`--retry`).
        var retry = false
        /// This candidate's identity (its own leadership is not reported as someone else's).
        var holder = ""
    }

    /// Where the command is.
    enum Phase: Sendable, Hashable {
        /// No command runs: waiting for leadership, or between terms.
        case waiting
        /// A launch was sent (or, in round mode, the spawn began); its outcome is not known yet.
        case starting
        /// The command runs.
        case running
    }

    /// The latest term led.
    struct Term: Sendable, Hashable {
        /// The term's fencing token.
        var token: FencingToken
        /// Whether a command was launched in it.
        var launched = false
        /// The latest kill time its keeper was sent.
        var killAt: BootTime?
    }

    /// How a campaign (one `withLeadership` of the elector, or the whole round in cron mode) ended.
    enum CampaignEnd: Sendable {
        /// A stop signal came before the command started.
        case notStarted
        /// The term of this token was over before the command could start.
        case termOver(FencingToken)
        /// The command was stopped by its keeper at the term's deadline.
        case stoppedByKeeper
        /// The command ran and ended.
        case exited(ChildProcess.Exit)
        /// The elector reported the term lost.
        case lost
        /// The campaign was cancelled.
        case cancelled
        /// The command could not be prepared or executed.
        case spawnFailed(ChildProcess.SpawnError)
    }

    enum Input: Sendable {
        /// `baton` received SIGTERM, SIGINT or SIGHUP.
        case stopSignal(Int32)
        /// `baton` received SIGTSTP, SIGTTIN, SIGTTOU or SIGCONT.
        case jobControl(Int32)
        /// The elector reported a leader (nil: none); `clockTime` is the local time of day now, for the status line.
        case leaderSeen(LeaderInfo?, clockTime: String)
        /// The elector reported its election in the term of this lease (an event, in order with its demotions).
        case electionReported(Lease)
        /// The elector renewed the term of this lease; its deadline, read live (nil: no longer leading in it).
        case renewed(Lease, deadline: BootTime?)
        /// The elector demoted itself from the term of this lease.
        case demoted(Lease, DemotionReason)
        /// The elector reported a store error.
        case storeError(BatonError)
        /// The work of a term began (before its launch).
        case termBegan(Lease)
        /// Launch the prepared command in the term of `term` (nil in round mode: no term, no kill time), whose
        /// deadline, read live, is `deadline` (nil: no longer leading in it); `cancelled`: the term's work was
        /// cancelled.
        case launchAsked(term: FencingToken?, deadline: BootTime?, cancelled: Bool)
        /// The command runs.
        case started
        /// The command never ran (its keeper refused the launch, or it could not be executed) or is gone.
        case commandGone
        /// The term's work was cancelled (the elector's demotion, seen by the work): stop the command.
        case workCancelled
        /// The command ended and nothing of its group is left; `byWatchdog`: its keeper's watchdog had signalled
        /// it; `cancelled`: the term's work was cancelled.
        case commandEnded(ChildProcess.Exit, byWatchdog: Bool, cancelled: Bool)
        /// A new campaign is about to begin.
        case campaignAsked
        /// The campaign ended this way.
        case campaignEnded(CampaignEnd)
        /// The loss asked for with ``Action/reportLoss`` was reported.
        case lossReported
    }

    /// A line for standard error.
    enum Report: Sendable, Equatable {
        /// Another holder leads (a status line).
        case waiting(holder: String, token: FencingToken, since: String)
        /// The store failed; the elector retries (a status line).
        case storeError(String)
        /// Campaigning again after a loss (a status line).
        case campaigningAgain
        /// The term ended before the command could start (an error).
        case termOverBeforeStart(FencingToken)
        /// The command could not be executed (an error).
        case cannotRun(String)
    }

    /// What the term's work returns with.
    enum TermEnd: Sendable, Equatable {
        /// The command was stopped by its keeper at the term's deadline.
        case stoppedByKeeper
        /// The command ended.
        case exited(ChildProcess.Exit)
    }

    enum LaunchRefusal: Sendable, Equatable {
        /// A stop signal came first (or a command is already starting).
        case stopping
        /// The term is over: demoted, no longer led, past its deadline, or its work was cancelled.
        case termOver
    }

    enum Action: Sendable, Equatable {
        /// Leave the election (the elector releases what it holds).
        case resign
        /// Launch the prepared command in `term` with this kill time (nil for both in round mode).
        case launch(term: FencingToken?, killAt: BootTime?)
        /// Launch nothing.
        case refuseLaunch(LaunchRefusal)
        /// Send the keeper of the command of `term` this later kill time.
        case moveKillTime(term: FencingToken, killAt: BootTime)
        /// Send `signal` to the command's group now and SIGKILL `grace` later; `once`: only if no stop began before.
        case stopChild(signal: Int32, grace: Duration, once: Bool)
        /// Send `signal` to the command's group (job control).
        case signalGroup(Int32)
        /// Stop `baton` itself (SIGSTOP).
        case stopSelf
        /// Print this line.
        case report(Report)
        /// The term's work returns with this; the elector then releases the term.
        case finishTerm(TermEnd)
        /// Say why the last term was lost and how its command was stopped, then feed ``Input/lossReported``.
        case reportLoss
        /// Campaign again, after a pause if given.
        case campaignAgain(after: Duration?)
        /// The cancellation was not caused by a stop signal: pass it on.
        case propagateCancellation
        /// End `baton` with this status.
        case exit(Int32)
    }

    let settings: Settings
    private(set) var phase = Phase.waiting
    /// The first stop signal received, if any.
    private(set) var stopSignal: Int32?
    /// The latest term led.
    private(set) var lastTerm: Term?
    /// The latest demotion seen.
    private(set) var demotion: (token: FencingToken, reason: DemotionReason)?
    /// How the command ended, if it ended by itself or on a stop signal (not because leadership ended).
    private(set) var endedCommand: ChildProcess.Exit?
    /// The elector reported something, so its campaign runs.
    private(set) var campaignSeen = false
    /// The other holder last reported waiting for, and since when.
    private var seen: (holder: String, token: FencingToken, since: String)?
    /// The last elector event was a store error (one status line per run of errors).
    private var failing = false

    init(settings: Settings) {
        self.settings = settings
    }

    /// Whether a campaign may be waited for: the elector reported something, or a stop signal came.
    var campaignReady: Bool { campaignSeen || stopSignal != nil }

    /// The reason of the demotion seen for `token`, if any.
    func demotionReason(of token: FencingToken) -> DemotionReason? {
        guard let demotion, demotion.token == token else { return nil }
        return demotion.reason
    }

    /// Whether the latest demotion seen is of the term of `token`.
    private func isDemoted(_ token: FencingToken?) -> Bool {
        guard let token else { return false }
        return demotion?.token == token
    }

    mutating func handle(_ input: Input, now: BootTime) -> [Action] {
        var actions: [Action] = []
        switch input {
        case .stopSignal(let signal):
            if stopSignal == nil { stopSignal = signal }
            if phase == .running {
                actions.append(stop(signal, once: false, now: now))
            } else {
                resignIfStopping(into: &actions)
            }
        case .jobControl(let signal):
            // Launched, its exec maybe not yet reported: the command may run already.
            let child = phase == .running || (phase == .starting && lastTerm?.launched == true)
            if signal == SIGCONT {
                if child { actions.append(.signalGroup(SIGCONT)) }
            } else {
                // SIGTSTP, which the keeper blocks, so its watchdog keeps running.
                if child { actions.append(.signalGroup(SIGTSTP)) }
                actions.append(.stopSelf)
            }
        case .leaderSeen, .electionReported, .renewed, .demoted, .storeError:
            handleElectorEvent(input, now: now, into: &actions)
            campaignSeen = true
            resignIfStopping(into: &actions)
        case .termBegan(let lease):
            lastTerm = Term(token: lease.token)
        case .launchAsked(let term, let deadline, let cancelled):
            actions.append(launch(term: term, deadline: deadline, cancelled: cancelled, now: now))
        case .started:
            phase = .running
            if let signal = stopSignal {
                actions.append(stop(signal, once: false, now: now))
            } else if isDemoted(lastTerm?.token) {
                actions.append(stop(SIGTERM, once: true, now: now))
            }
        case .commandGone:
            phase = .waiting
        case .workCancelled:
            if phase == .running { actions.append(stop(SIGTERM, once: true, now: now)) }
        case .commandEnded(let exit, let byWatchdog, let cancelled):
            phase = .waiting
            if byWatchdog {
                // The term's deadline has passed (`baton` may have been stopped until after it): the term is lost,
                // however the command exited.
                actions.append(.finishTerm(.stoppedByKeeper))
            } else {
                if !cancelled {
                    // The command ended by itself or on a stop signal and nothing of its group is left: the run is
                    // over, so the key goes to the next candidate now.
                    endedCommand = exit
                    actions.append(.resign)
                }
                actions.append(.finishTerm(.exited(exit)))
            }
        case .campaignAsked:
            if let stopSignal { actions.append(.exit(128 + stopSignal)) }
        case .campaignEnded(let end):
            campaignEnded(end, into: &actions)
        case .lossReported:
            afterLoss(pause: nil, into: &actions)
        }
        return actions
    }

    // MARK: Elector events

    private mutating func handleElectorEvent(_ input: Input, now: BootTime, into actions: inout [Action]) {
        switch input {
        case .leaderSeen(let info, let clockTime):
            failing = false
            guard let info, info.holder != settings.holder else { return }
            if seen?.holder != info.holder || seen?.token != info.token {
                seen = (info.holder, info.token, clockTime)
            }
            actions.append(.report(.waiting(holder: info.holder, token: info.token, since: seen?.since ?? clockTime)))
        case .electionReported(let lease):
            failing = false
            seen = nil
            // A demotion seen earlier for the same token belongs to an earlier hold of that term.
            if demotion?.token == lease.token { demotion = nil }
        case .renewed(let lease, let deadline):
            failing = false
            renewed(lease.token, deadline: deadline, now: now, into: &actions)
        case .demoted(let lease, let reason):
            // With resignOnLoss, a lost term makes the elector resign at once, although the command may still be
            // stopping: the store said the term is over. Never after deadlineReached: then the elector's next
            // acquire may renew the old term, which must stay in the store until the command is gone.
            if settings.resignOnLoss && reason == .lost { actions.append(.resign) }
            demotion = (lease.token, reason)
            if phase == .running && lastTerm?.token == lease.token {
                actions.append(stop(SIGTERM, once: true, now: now))
            }
        case .storeError(let error):
            if !failing { actions.append(.report(.storeError(CommandOutcome.message(for: error)))) }
            failing = true
        default:
            break
        }
    }

    /// The keeper of the term's command gets the new kill time: only for the term the command was launched in,
    /// not after its demotion, only while the elector leads before its deadline, only later than the last one, and
    /// not once the SIGTERM time of the last one has passed (the keeper may have stopped the command).
    private mutating func renewed(
        _ token: FencingToken, deadline: BootTime?, now: BootTime, into actions: inout [Action]
    ) {
        guard var term = lastTerm, term.token == token, term.launched, !isDemoted(token) else { return }
        guard let deadline, deadline > now else { return }
        let killAt = deadline + settings.grace
        if let current = term.killAt {
            guard killAt > current, now < current - settings.grace else { return }
        }
        term.killAt = killAt
        lastTerm = term
        actions.append(.moveKillTime(term: token, killAt: killAt))
    }

    // MARK: The command

    private mutating func launch(term: FencingToken?, deadline: BootTime?, cancelled: Bool, now: BootTime) -> Action {
        guard stopSignal == nil, phase == .waiting else { return .refuseLaunch(.stopping) }
        guard let token = term else {
            phase = .starting
            return .launch(term: nil, killAt: nil)
        }
        if isDemoted(token) { return .refuseLaunch(.termOver) }
        guard !cancelled, let deadline, deadline > now else { return .refuseLaunch(.termOver) }
        let killAt = deadline + settings.grace
        phase = .starting
        lastTerm = Term(token: token, launched: true, killAt: killAt)
        return .launch(term: token, killAt: killAt)
    }

    /// Stops the command: `signal` now, SIGKILL after the grace, and never later than its keeper's kill time.
    private func stop(_ signal: Int32, once: Bool, now: BootTime) -> Action {
        var grace = settings.grace
        if let keeper = lastTerm?.killAt { grace = max(.zero, min(grace, keeper - now)) }
        return .stopChild(signal: signal, grace: grace, once: once)
    }

    /// While no command runs, a stop signal makes the elector leave the election (repeated on each elector event:
    /// a signal that came before the campaign started found nothing to resign).
    private func resignIfStopping(into actions: inout [Action]) {
        if stopSignal != nil && phase == .waiting { actions.append(.resign) }
    }

    // MARK: The end of a campaign

    private mutating func campaignEnded(_ end: CampaignEnd, into actions: inout [Action]) {
        switch end {
        case .notStarted:
            actions.append(.exit(128 + (stopSignal ?? SIGTERM)))
        case .termOver(let token):
            actions.append(.report(.termOverBeforeStart(token)))
            // The elector may still hold the term for a moment before its demotion is seen: a short pause keeps
            // the next attempt from spinning on it.
            afterLoss(pause: .milliseconds(20), into: &actions)
        case .stoppedByKeeper:
            actions.append(.reportLoss)
        case .exited(let exit):
            actions.append(.exit(exit.code))
        case .lost:
            // The resign after the command's end can end the term before the work's return is seen.
            if let endedCommand {
                actions.append(.exit(endedCommand.code))
            } else {
                actions.append(.reportLoss)
            }
        case .cancelled:
            // The elector left the election because a stop signal arrived while waiting.
            actions.append(stopSignal.map { .exit(128 + $0) } ?? .propagateCancellation)
        case .spawnFailed(let error):
            actions.append(.report(.cannotRun(error.reason)))
            actions.append(.exit(error.exitCode))
        }
    }

    /// After a lost term: 128 + the stop signal if one came, else 75, or with `--retry` a new campaign.
    private func afterLoss(pause: Duration?, into actions: inout [Action]) {
        if let stopSignal {
            actions.append(.exit(128 + stopSignal))
        } else if !settings.retry {
            actions.append(.exit(CommandOutcome.leadershipLost))
        } else {
            actions.append(.report(.campaigningAgain))
            actions.append(.campaignAgain(after: pause))
        }
    }
}
