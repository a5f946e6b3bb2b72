import Baton
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The decisions of `baton run`, fed explicit times: no process, no store, no sleep.
@Suite("baton run: the supervision's decisions")
struct RunStateMachineTests {
    typealias Machine = RunStateMachine
    static let grace = Duration.seconds(1)
    static let lease = Lease(key: "k", holder: "A", token: 3, ttl: .seconds(10))
    static let other = Lease(key: "k", holder: "A", token: 4, ttl: .seconds(10))

    /// The instant `seconds` after the clock's origin.
    static func at(_ seconds: Double) -> BootTime {
        BootTime(nanoseconds: Int64((seconds * 1000).rounded()) * 1_000_000)
    }

    static func machine(resignOnLoss: Bool = false, retry: Bool = false) -> Machine {
        Machine(settings: .init(grace: grace, resignOnLoss: resignOnLoss, retry: retry, holder: "A"))
    }

    /// A machine whose command runs in the term of `lease`, launched at 0 s with the deadline `deadline`.
    static func running(deadline: Double = 5, resignOnLoss: Bool = false, retry: Bool = false) -> Machine {
        var machine = machine(resignOnLoss: resignOnLoss, retry: retry)
        _ = machine.handle(.termBegan(lease), now: at(0))
        let launch = machine.handle(
            .launchAsked(term: lease.token, deadline: at(deadline), cancelled: false), now: at(0))
        #expect(launch == [.launch(term: lease.token, killAt: at(deadline + 1))])
        #expect(machine.handle(.started, now: at(0)).isEmpty)
        return machine
    }

    static let exit = ChildProcess.Exit(code: 0, signal: nil)

    // MARK: The launch

    @Test("the launch carries the kill time deadline + grace, and is refused from the deadline (kill time − grace) on")
    func launchAgainstTheDeadline() {
        var early = Self.machine()
        _ = early.handle(.termBegan(Self.lease), now: Self.at(0))
        #expect(
            early.handle(.launchAsked(term: 3, deadline: Self.at(10), cancelled: false), now: Self.at(9.999))
                == [.launch(term: 3, killAt: Self.at(11))])
        #expect(early.phase == .starting)

        for now in [10.0, 10.5, 11, 20] {
            var late = Self.machine()
            _ = late.handle(.termBegan(Self.lease), now: Self.at(0))
            #expect(
                late.handle(.launchAsked(term: 3, deadline: Self.at(10), cancelled: false), now: Self.at(now))
                    == [.refuseLaunch(.termOver)], "launched at \(now) s for a deadline at 10 s")
            #expect(late.phase == .waiting)
        }
    }

    @Test("no launch once the term's demotion was seen, when no longer leading, when cancelled, or after a stop signal")
    func noLaunchForATermThatIsOver() {
        let ask = Machine.Input.launchAsked(term: 3, deadline: Self.at(10), cancelled: false)
        var demoted = Self.machine()
        _ = demoted.handle(.demoted(Self.lease, .deadlineReached), now: Self.at(0))
        #expect(demoted.handle(ask, now: Self.at(1)) == [.refuseLaunch(.termOver)])

        var notLeading = Self.machine()
        #expect(
            notLeading.handle(.launchAsked(term: 3, deadline: nil, cancelled: false), now: Self.at(1))
                == [.refuseLaunch(.termOver)])

        var cancelled = Self.machine()
        #expect(
            cancelled.handle(.launchAsked(term: 3, deadline: Self.at(10), cancelled: true), now: Self.at(1))
                == [.refuseLaunch(.termOver)])

        var stopping = Self.machine()
        _ = stopping.handle(.stopSignal(SIGTERM), now: Self.at(0))
        #expect(stopping.handle(ask, now: Self.at(1)) == [.refuseLaunch(.stopping)])

        // Another term's demotion does not refuse this one.
        var otherTerm = Self.machine()
        _ = otherTerm.handle(.demoted(Self.other, .lost), now: Self.at(0))
        #expect(otherTerm.handle(ask, now: Self.at(1)) == [.launch(term: 3, killAt: Self.at(11))])
        // One launch at a time.
        #expect(otherTerm.handle(ask, now: Self.at(1)) == [.refuseLaunch(.stopping)])
    }

    @Test("round mode: the command starts unless a stop signal came first, with no term and no kill time")
    func roundLaunch() {
        var machine = Self.machine()
        #expect(
            machine.handle(.launchAsked(term: nil, deadline: nil, cancelled: false), now: Self.at(0))
                == [.launch(term: nil, killAt: nil)])
        var stopped = Self.machine()
        _ = stopped.handle(.stopSignal(SIGINT), now: Self.at(0))
        #expect(
            stopped.handle(.launchAsked(term: nil, deadline: nil, cancelled: false), now: Self.at(0))
                == [.refuseLaunch(.stopping)])
    }

    // MARK: Kill times

    @Test("each renewal moves the kill time on: only later, only for the launched term, not after its demotion")
    func killTimesOnlyMoveLater() {
        var machine = Self.running(deadline: 5)
        #expect(
            machine.handle(.renewed(Self.lease, deadline: Self.at(8)), now: Self.at(3))
                == [.moveKillTime(term: 3, killAt: Self.at(9))])
        // Earlier or equal: not sent.
        #expect(machine.handle(.renewed(Self.lease, deadline: Self.at(7)), now: Self.at(4)).isEmpty)
        #expect(machine.handle(.renewed(Self.lease, deadline: Self.at(8)), now: Self.at(4)).isEmpty)
        // Another term, or no longer leading, or a deadline already passed: not sent.
        #expect(machine.handle(.renewed(Self.other, deadline: Self.at(20)), now: Self.at(4)).isEmpty)
        #expect(machine.handle(.renewed(Self.lease, deadline: nil), now: Self.at(4)).isEmpty)
        #expect(machine.handle(.renewed(Self.lease, deadline: Self.at(4)), now: Self.at(4)).isEmpty)
        #expect(machine.lastTerm?.killAt == Self.at(9))
        // Once the SIGTERM time of the kill time sent has passed, the keeper may have stopped the command.
        #expect(machine.handle(.renewed(Self.lease, deadline: Self.at(20)), now: Self.at(8)).isEmpty)
        #expect(
            machine.handle(.renewed(Self.lease, deadline: Self.at(12)), now: Self.at(7.5))
                == [.moveKillTime(term: 3, killAt: Self.at(13))])
        // After the term's demotion: not sent.
        _ = machine.handle(.demoted(Self.lease, .lost), now: Self.at(8))
        #expect(machine.handle(.renewed(Self.lease, deadline: Self.at(30)), now: Self.at(8)).isEmpty)
    }

    @Test("a renewal of a term whose command was not launched sends no kill time")
    func noKillTimeWithoutALaunch() {
        var machine = Self.machine()
        _ = machine.handle(.termBegan(Self.lease), now: Self.at(0))
        #expect(machine.handle(.renewed(Self.lease, deadline: Self.at(8)), now: Self.at(1)).isEmpty)
    }

    // MARK: Demotion

    @Test("a demotion stops the term's command; the term's work returns only once the command's group is gone")
    func demotionStopsTheCommand() {
        var machine = Self.running(deadline: 5)
        // Another term's demotion stops nothing.
        #expect(machine.handle(.demoted(Self.other, .lost), now: Self.at(1)) == [])
        let actions = machine.handle(.demoted(Self.lease, .deadlineReached), now: Self.at(5))
        #expect(actions == [.stopChild(signal: SIGTERM, grace: .seconds(1), once: true)])
        #expect(!actions.contains { if case .finishTerm = $0 { true } else { false } })
        // The cancellation of the term's work stops it too (one SIGTERM: `once`).
        #expect(
            machine.handle(.workCancelled, now: Self.at(5.1))
                == [.stopChild(signal: SIGTERM, grace: .milliseconds(900), once: true)])
        // Gone: the work returns (the elector releases then); no resign, the term ended by itself.
        let exit = ChildProcess.Exit(code: 143, signal: SIGTERM)
        #expect(
            machine.handle(.commandEnded(exit, byWatchdog: false, cancelled: true), now: Self.at(5.2))
                == [.finishTerm(.exited(exit))])
        #expect(machine.endedCommand == nil)
        #expect(machine.phase == .waiting)
    }

    @Test("SIGKILL is due after the grace, and never later than the keeper's kill time")
    func killAtNeverAfterTheKeepers() {
        var machine = Self.running(deadline: 5)
        #expect(
            machine.handle(.stopSignal(SIGINT), now: Self.at(2))
                == [.stopChild(signal: SIGINT, grace: .seconds(1), once: false)])
        var late = Self.running(deadline: 5)
        #expect(
            late.handle(.demoted(Self.lease, .lost), now: Self.at(5.5))
                == [.stopChild(signal: SIGTERM, grace: .milliseconds(500), once: true)])
        var past = Self.running(deadline: 5)
        #expect(
            past.handle(.stopSignal(SIGTERM), now: Self.at(7))
                == [.stopChild(signal: SIGTERM, grace: .zero, once: false)])
    }

    @Test("a demotion seen while the command is being launched stops it once it runs")
    func demotionWhileStarting() {
        var machine = Self.machine()
        _ = machine.handle(.termBegan(Self.lease), now: Self.at(0))
        _ = machine.handle(.launchAsked(term: 3, deadline: Self.at(5), cancelled: false), now: Self.at(0))
        #expect(machine.handle(.demoted(Self.lease, .lost), now: Self.at(0.1)).isEmpty)
        #expect(
            machine.handle(.started, now: Self.at(0.2))
                == [.stopChild(signal: SIGTERM, grace: .seconds(1), once: true)])
    }

    @Test("--retry: a term held again after its deadline demotion (same token) is launched and its kill time moves")
    func termHeldAgainAfterDeadlineDemotion() {
        var machine = Self.running(deadline: 5, retry: true)
        _ = machine.handle(.demoted(Self.lease, .deadlineReached), now: Self.at(5))
        _ = machine.handle(
            .commandEnded(.init(code: 143, signal: SIGTERM), byWatchdog: false, cancelled: true), now: Self.at(5.1))
        #expect(machine.handle(.campaignEnded(.lost), now: Self.at(5.2)) == [.reportLoss])
        #expect(
            machine.handle(.lossReported, now: Self.at(5.3))
                == [.report(.campaigningAgain), .campaignAgain(after: nil)])
        #expect(machine.handle(.campaignAsked, now: Self.at(5.3)).isEmpty)

        // The demotion still refuses the term before its election in it is reported again...
        var stale = machine
        _ = stale.handle(.termBegan(Self.lease), now: Self.at(6))
        #expect(
            stale.handle(.launchAsked(term: 3, deadline: Self.at(12), cancelled: false), now: Self.at(6))
                == [.refuseLaunch(.termOver)])
        // ...and no longer after it.
        _ = machine.handle(.electionReported(Self.lease), now: Self.at(6))
        _ = machine.handle(.termBegan(Self.lease), now: Self.at(6))
        #expect(
            machine.handle(.launchAsked(term: 3, deadline: Self.at(12), cancelled: false), now: Self.at(6))
                == [.launch(term: 3, killAt: Self.at(13))])
        _ = machine.handle(.started, now: Self.at(6.1))
        #expect(
            machine.handle(.renewed(Self.lease, deadline: Self.at(15)), now: Self.at(9))
                == [.moveKillTime(term: 3, killAt: Self.at(16))])
    }

    @Test("the elector resigns at a lost term only when baton exits after a loss, and never at a deadline demotion")
    func resignOnLoss() {
        var exiting = Self.running(resignOnLoss: true)
        #expect(exiting.handle(.demoted(Self.lease, .lost), now: Self.at(1)).first == .resign)
        var deadline = Self.running(resignOnLoss: true)
        #expect(!deadline.handle(.demoted(Self.lease, .deadlineReached), now: Self.at(1)).contains(.resign))
        var retrying = Self.running(resignOnLoss: false, retry: true)
        #expect(!retrying.handle(.demoted(Self.lease, .lost), now: Self.at(1)).contains(.resign))
    }

    // MARK: The command's end

    @Test("a command that ends by itself ends the run: resign at once, its status is baton's")
    func commandEndsByItself() {
        var machine = Self.running()
        let exit = ChildProcess.Exit(code: 3, signal: nil)
        #expect(
            machine.handle(.commandEnded(exit, byWatchdog: false, cancelled: false), now: Self.at(1))
                == [.resign, .finishTerm(.exited(exit))])
        #expect(machine.endedCommand == exit)
        #expect(machine.handle(.campaignEnded(.exited(exit)), now: Self.at(1)) == [.exit(3)])
        // The resign can end the term before the work's return is seen: still the command's status.
        #expect(machine.handle(.campaignEnded(.lost), now: Self.at(1)) == [.exit(3)])
    }

    @Test("a command its keeper stopped at the deadline means a lost term, however it exited: 75")
    func stoppedByKeeper() {
        var machine = Self.running()
        #expect(
            machine.handle(.commandEnded(Self.exit, byWatchdog: true, cancelled: false), now: Self.at(6))
                == [.finishTerm(.stoppedByKeeper)])
        #expect(machine.handle(.campaignEnded(.stoppedByKeeper), now: Self.at(6)) == [.reportLoss])
        #expect(machine.handle(.lossReported, now: Self.at(6)) == [.exit(75)])
    }

    @Test("exit statuses: 128 + the stop signal, 75 for a lost term, 126 and 127, cancellation passed on")
    func exitStatuses() {
        var plain = Self.machine()
        #expect(plain.handle(.campaignAsked, now: Self.at(0)).isEmpty)
        #expect(plain.handle(.campaignEnded(.notStarted), now: Self.at(0)) == [.exit(128 + SIGTERM)])
        #expect(plain.handle(.campaignEnded(.cancelled), now: Self.at(0)) == [.propagateCancellation])
        #expect(
            plain.handle(.campaignEnded(.termOver(3)), now: Self.at(0))
                == [.report(.termOverBeforeStart(3)), .exit(75)])
        #expect(
            plain.handle(.campaignEnded(.spawnFailed(.init(errorNumber: ENOENT))), now: Self.at(0))
                == [.report(.cannotRun(String(cString: strerror(ENOENT)))), .exit(127)])
        #expect(
            plain.handle(.campaignEnded(.spawnFailed(.init(errorNumber: EACCES))), now: Self.at(0)).last == .exit(126))

        var signalled = Self.machine()
        _ = signalled.handle(.stopSignal(SIGINT), now: Self.at(0))
        #expect(signalled.handle(.campaignAsked, now: Self.at(0)) == [.exit(130)])
        #expect(signalled.handle(.campaignEnded(.notStarted), now: Self.at(0)) == [.exit(130)])
        #expect(signalled.handle(.campaignEnded(.cancelled), now: Self.at(0)) == [.exit(130)])
        #expect(signalled.handle(.lossReported, now: Self.at(0)) == [.exit(130)])

        var retrying = Self.machine(retry: true)
        #expect(
            retrying.handle(.campaignEnded(.termOver(3)), now: Self.at(0))
                == [
                    .report(.termOverBeforeStart(3)), .report(.campaigningAgain),
                    .campaignAgain(after: .milliseconds(20)),
                ])
        #expect(retrying.handle(.campaignEnded(.lost), now: Self.at(0)) == [.reportLoss])
    }

    // MARK: Signals

    @Test("a stop signal: resign while waiting (repeated at each elector event), forwarded once the command runs")
    func stopSignals() {
        var waiting = Self.machine()
        #expect(!waiting.campaignReady)
        #expect(waiting.handle(.stopSignal(SIGTERM), now: Self.at(0)) == [.resign])
        #expect(waiting.campaignReady)
        #expect(waiting.handle(.storeError(.timeout("t")), now: Self.at(0)).last == .resign)
        #expect(waiting.handle(.leaderSeen(nil, clockTime: "14:03:12"), now: Self.at(0)) == [.resign])

        var starting = Self.machine()
        _ = starting.handle(.termBegan(Self.lease), now: Self.at(0))
        _ = starting.handle(.launchAsked(term: 3, deadline: Self.at(5), cancelled: false), now: Self.at(0))
        #expect(starting.handle(.stopSignal(SIGHUP), now: Self.at(1)).isEmpty)
        #expect(
            starting.handle(.started, now: Self.at(1))
                == [.stopChild(signal: SIGHUP, grace: .seconds(1), once: false)])
        // A second signal is forwarded too; the first one gives the exit status.
        #expect(
            starting.handle(.stopSignal(SIGINT), now: Self.at(1.5))
                == [.stopChild(signal: SIGINT, grace: .seconds(1), once: false)])
        #expect(starting.stopSignal == SIGHUP)
    }

    @Test("Ctrl-Z stops the command's group and then baton; SIGCONT continues the group")
    func jobControl() {
        var waiting = Self.machine()
        #expect(waiting.handle(.jobControl(SIGTSTP), now: Self.at(0)) == [.stopSelf])
        #expect(waiting.handle(.jobControl(SIGCONT), now: Self.at(0)).isEmpty)
        var running = Self.running()
        #expect(running.handle(.jobControl(SIGTTIN), now: Self.at(0)) == [.signalGroup(SIGTSTP), .stopSelf])
        #expect(running.handle(.jobControl(SIGCONT), now: Self.at(0)) == [.signalGroup(SIGCONT)])
        var launched = Self.machine()
        _ = launched.handle(.termBegan(Self.lease), now: Self.at(0))
        _ = launched.handle(.launchAsked(term: 3, deadline: Self.at(5), cancelled: false), now: Self.at(0))
        #expect(launched.handle(.jobControl(SIGTSTP), now: Self.at(0)) == [.signalGroup(SIGTSTP), .stopSelf])
    }

    // MARK: Status lines

    @Test("waiting lines keep the time the holder was first seen; a run of store errors gives one line")
    func statusLines() {
        var machine = Self.machine()
        let b = LeaderInfo(holder: "B", token: 7, metadata: nil)
        #expect(
            machine.handle(.leaderSeen(b, clockTime: "14:00:00"), now: Self.at(0))
                == [.report(.waiting(holder: "B", token: 7, since: "14:00:00"))])
        #expect(
            machine.handle(.leaderSeen(b, clockTime: "14:00:05"), now: Self.at(5))
                == [.report(.waiting(holder: "B", token: 7, since: "14:00:00"))])
        let own = LeaderInfo(holder: "A", token: 8, metadata: nil)
        #expect(machine.handle(.leaderSeen(own, clockTime: "14:00:06"), now: Self.at(6)).isEmpty)
        let error = BatonError.timeout("no answer")
        #expect(machine.handle(.storeError(error), now: Self.at(7)).count == 1)
        #expect(machine.handle(.storeError(error), now: Self.at(8)).isEmpty)
        _ = machine.handle(.leaderSeen(nil, clockTime: "14:00:09"), now: Self.at(9))
        #expect(machine.handle(.storeError(error), now: Self.at(10)).count == 1)
    }
}
