@_spi(BatonStoreKit) import Baton
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension BatonCommand.Run {
    /// `--holders N`: runs the command in a slot of a semaphore of N (see ``SemaphoreElector``). The slot is
    /// chosen first (campaigning for every slot, keeping the first won); from then on the slot's elector leads
    /// as a single key's does in ``runLeader(store:holder:timing:)``.
    func runHolder(store: LeaseStore, holder: String, timing: RunTiming, permits: Int) async throws -> Int32 {
        let (configuration, logger) = electorSettings(timing)
        let semaphore = try SemaphoreElector(
            store: store, key: key, holder: holder, permits: permits, configuration: configuration,
            logger: logger)
        let reporter = StatusReporter(key: key, holder: holder, command: commandName, quiet: quiet)
        // The elector of the slot won, once there is one.
        let chosen = ChosenSlot()
        let supervisor = RunSupervisor(
            grace: timing.grace, resignOnLoss: !retry, retry: retry, resign: { semaphore.stopChoosing() },
            timeLeft: { token in chosen.elector?.timeLeft(in: token) },
            reporter: reporter)
        let signals = StopSignals { supervisor.received($0) }
        defer { signals.cancel() }
        let jobControl = StopSignals(StopSignals.jobControl) { supervisor.jobControl($0) }
        defer { jobControl.cancel() }
        do {
            return try await semaphore.announcing {
                reporter.status("waiting: for a slot of \(key) (\(permits) at once)")
                // Who holds the slots, read beside the campaigns (never delaying them) and said only while
                // still waiting.
                let holders = Task {
                    guard let holders = try? await semaphore.holders(), chosen.elector == nil else { return }
                    if let line = Self.slotHolders(holders, key: key) { reporter.status(line) }
                }
                defer { holders.cancel() }
                let choice = try await semaphore.chooseSlot()
                chosen.elector = choice.elector
                // The term is joined again below, as run()'s campaign is for a single key.
                choice.elector.workReturned(choice.lease.token)
                return try await withThrowingTaskGroup(of: Void.self) { group in
                    // The slot's events from its election on (those before it were about waiting, and are over).
                    group.addTask { await supervisor.follow(Self.fromElection(choice.events)) }
                    defer { group.cancelAll() }
                    await supervisor.waitForCampaign()
                    let status: Int32
                    do {
                        status = try await lead(
                            choice.elector, holder: holder, supervisor: supervisor, reporter: reporter,
                            variables: ["BATON_SLOT": String(choice.slot)])
                    } catch {
                        await choice.finish()
                        throw error
                    }
                    await choice.finish()
                    return status
                }
            }
        } catch is CancellationError where supervisor.stopSignal != nil {
            // A stop signal ended the campaigns before a slot was won (or the announcement, while the store
            // could not be reached).
            return 128 + (supervisor.stopSignal ?? SIGTERM)
        }
    }

    /// The elector of the slot a holder won, set once it won one.
    final class ChosenSlot: Sendable {
        private let value = Mutex<LeaderElector?>(nil)

        var elector: LeaderElector? {
            get { value.withLock { $0 } }
            set { value.withLock { $0 = newValue } }
        }
    }

    /// `waiting: the slots of KEY are held by A (slot 0, token 5), B (slot 1, token 7)`, or nil if no slot is
    /// held.
    static func slotHolders(_ holders: [LeaderInfo?], key: String) -> String? {
        let held = holders.enumerated().compactMap { slot, leader in
            leader.map { "\($0.holder) (slot \(slot), token \($0.token))" }
        }
        guard !held.isEmpty else { return nil }
        let free = holders.count - held.count
        let rest = free == 0 ? "" : "; \(free) free"
        return "waiting: the slots of \(key) are held by \(held.joined(separator: ", "))\(rest)"
    }

    /// The events of `events` from its first `elected` on.
    private static func fromElection(_ events: AsyncStream<ElectorEvent>) -> AsyncStream<ElectorEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: ElectorEvent.self, bufferingPolicy: .bufferingNewest(256))
        let forwarding = Task {
            var elected = false
            for await event in events {
                if case .elected = event { elected = true }
                if elected { continuation.yield(event) }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in forwarding.cancel() }
        return stream
    }

    /// Campaigns and runs the command while leader, once or (with --retry) after every loss, doing what the
    /// supervisor's machine decides after each campaign.
    ///
    /// The command is prepared (its keeper forked, see ``ChildProcess/prepare(_:environment:)``) before each
    /// campaign, so that being elected only has to launch it: a handover costs the command's own start-up,
    /// not a fork of `baton`.
    func lead(
        _ elector: LeaderElector,
        holder: String,
        supervisor: RunSupervisor,
        reporter: StatusReporter,
        variables: [String: String] = [:]
    ) async throws -> Int32 {
        let (traceParent, inherited) = TraceParent.inherited(try commandEnvironment())
        var environment = inherited
        environment["BATON_KEY"] = key
        environment["BATON_HOLDER"] = holder
        environment.merge(variables) { _, new in new }
        // Each term's token and trace context are added at the launch.
        environment["BATON_TOKEN"] = nil
        var next = supervisor.campaignAsked()
        while true {
            switch next {
            case .proceed:
                break
            case .campaignAgain(let pause):
                if let pause { try? await Task.sleep(for: pause) }
                next = supervisor.campaignAsked()
                continue
            case .reportLoss:
                await reportLoss(supervisor: supervisor, reporter: reporter)
                next = supervisor.lossReported()
                continue
            case .propagateCancellation:
                throw CancellationError()
            case .exit(let status):
                return status
            }
            next = supervisor.campaignEnded(
                try await campaign(
                    elector, environment: environment, traceParent: traceParent, supervisor: supervisor,
                    reporter: reporter))
        }
    }

    /// One campaign: prepares the command, waits for leadership and runs the command in the term; returns how
    /// it ended.
    private func campaign(
        _ elector: LeaderElector,
        environment: [String: String],
        traceParent: TraceParent?,
        supervisor: RunSupervisor,
        reporter: StatusReporter
    ) async throws -> RunStateMachine.CampaignEnd {
        let child: ChildProcess
        do {
            child = try await ChildProcess.prepare(command, environment: environment)
        } catch {
            return .spawnFailed(error)
        }
        // Not started in this campaign (a stop signal, a store error): its keeper ends unused.
        defer { child.abandon() }
        // Drawn now, off the handover's path: a campaign launches at most once.
        var generator = SystemRandomNumberGenerator()
        let trace = TraceParent.term(in: traceParent, using: &generator)
        do {
            // Joins run()'s campaign and never starts one: a stop signal may have resigned it while the command
            // was prepared, and a campaign begun now would wait for a leadership nobody wants (for ever, if the
            // store cannot be reached).
            return try await elector.withLeadershipOfRun { lease -> RunStateMachine.CampaignEnd in
                supervisor.elected(lease)
                guard !Task.isCancelled else { return .notStarted }
                // Decided under the supervisor's lock, with the term's deadline read last: no launch for a term
                // already over. The keeper refuses it too if its SIGTERM time passes on the way.
                let written: Int32
                let entries = ["BATON_TOKEN=\(lease.token)", trace.environmentEntry]
                switch supervisor.launch(child, for: lease, entries: entries) {
                case .stopping: return .notStarted
                case .termOver: return .termOver(lease.token)
                case .sent(let result): written = result
                }
                do {
                    if try await child.launchOutcome(written: written) == .refused {
                        supervisor.finished()
                        return .termOver(lease.token)
                    }
                } catch {
                    supervisor.finished()
                    throw error
                }
                reporter.status(
                    "elected: \(lease.key) (token \(lease.token), trace \(trace.traceIDString)); running \(commandName)"
                )
                supervisor.started(child)
                let exit = await withTaskCancellationHandler {
                    await child.exitWithGroup(grace: supervisor.grace)
                } onCancel: {
                    supervisor.workCancelled()
                }
                switch supervisor.commandEnded(exit, watchdogSignal: child.watchdogSignal) {
                case .stoppedByKeeper: return .stoppedByKeeper
                case .exited(let exit): return .exited(exit)
                }
            }
        } catch let error as ChildProcess.SpawnError {
            return .spawnFailed(error)
        } catch let error as BatonError where error.code == .lost {
            return .lost
        } catch is CancellationError {
            return .cancelled
        }
    }

    /// Says why the last term was lost and how its command was stopped.
    private func reportLoss(supervisor: RunSupervisor, reporter: StatusReporter) async {
        let ended = supervisor.lastTerm
        let reason: DemotionReason? =
            if let ended {
                await supervisor.demotionReason(of: ended.token, within: .milliseconds(500))
            } else {
                nil
            }
        var stopped: StatusReporter.StoppedCommand?
        if let child = ended?.child, child.launchRefused {
            stopped = .refused
        } else if let child = ended?.child {
            let exit = await child.exit()
            stopped = .stopped(
                exit: exit, killed: child.wasKilled || child.watchdogSignal == SIGKILL,
                byKeeper: child.watchdogSignal != nil)
        }
        reporter.lost(token: ended?.token, reason: reason, command: stopped, grace: supervisor.grace)
    }
}
