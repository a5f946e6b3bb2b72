import ArgumentParser
@_spi(BatonStoreKit) import Baton
import CBatonProcess
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension BatonCommand {
    /// `baton run --key KEY -- CMD [ARGS...]`: runs a command only while leader of a key, or once per round.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a command only while this process leads a key (or, with --round, once per round).",
            usage: """
                baton run --key KEY [--store URL] [--id ID] [--ttl 10s] [--grace D] [--retry] [--quiet] -- CMD [ARGS...]
                  baton run --key KEY --holders N [--id ID] [--ttl 10s] [--retry] -- CMD [ARGS...]
                  baton run --key KEY --shards M [--id ID] [--ttl 10s] [--retry] -- CMD [ARGS...]
                  baton run --key SYSTEM --round ROUND [--id ID] [--lost-exit-code N] -- CMD [ARGS...]
                """,
            discussion: """
                Campaigns for KEY and, once elected, starts CMD in a process group of its own with BATON_KEY, \
                BATON_TOKEN (the fencing token), BATON_HOLDER and TRACEPARENT (a span of the term's own, in the \
                trace baton was started in if its TRACEPARENT is valid, else in a new trace) in its environment; \
                standard input, output and error are CMD's. While CMD runs, baton renews the lease. CMD's \
                environment is baton's without the store's: BATON_STORE, BATON_STORE_FILE and, for an s3: \
                store, the AWS credentials are withheld unless --pass-store-credentials.

                - CMD exits: baton releases the key at once (the next candidate starts within milliseconds) and \
                exits with CMD's status (128 + N if signal N ended it).
                - Leadership is lost (a renewal is refused, or the store stays unreachable until the local \
                deadline): CMD's process group gets SIGTERM and, after the grace, SIGKILL, all before the lease \
                could pass to anyone else; then baton exits 75, or campaigns again with --retry.
                - baton gets SIGTERM, SIGINT or SIGHUP: the signal is forwarded to CMD's process group, SIGKILL \
                follows after the grace, then baton releases the key and exits with CMD's status. Before CMD \
                started, baton leaves the election and exits 128 + the signal.
                - baton is killed (kill -9): CMD's whole process group gets SIGKILL at once, also what CMD \
                started in it (a keeper process that leads the group sees baton's end and kills it). A process \
                that leaves the group (setsid) is out of reach.
                - baton is stopped or hangs (kill -STOP, a debugger): the keeper is also a watchdog with its own \
                timer. After each successful renewal baton sends it the term's kill time; the keeper sends the \
                group SIGTERM and SIGKILL at the times below by itself, before the lease could pass to anyone else.
                - Ctrl-Z (SIGTSTP, SIGTTIN, SIGTTOU): baton stops CMD's process group (SIGTSTP) and then itself; \
                SIGCONT continues both. A job stopped past the term's deadline is ended by the watchdog.

                Timing. The safety margin is max(ttl/10, 100ms); the grace defaults to max(ttl/5, 100ms); the \
                renew interval to min(ttl/3, (ttl - margin - grace)/2). If the last successful renewal was sent \
                at t0, baton gives up leadership at t0 + ttl - margin - grace: SIGTERM then, SIGKILL at \
                t0 + ttl - margin, and the store cannot hand the key to anyone before t0 + ttl. So ttl must exceed \
                margin + grace, and the renew interval must be shorter than ttl - margin - grace; baton checks \
                this at start. With --ttl 10s: margin 1s, grace 2s, renewals every 3.333s.

                Semaphore (--holders N): up to N candidates of KEY run CMD at once, each in a slot of its own \
                (KEY#0 ... KEY#N-1; with N = 1, KEY itself). A waiting candidate campaigns for every slot and runs \
                CMD in the first it wins, with BATON_SLOT (0 ... N-1) and that slot's BATON_TOKEN; everything above \
                holds per slot. Every candidate of KEY must give the same N: another N is refused (exit 2) while \
                the semaphore is in use. With --retry, a candidate that lost its slot campaigns for that slot again.

                Shards (--shards M): KEY has M shards (KEY#shard-0 ... KEY#shard-M-1), spread evenly over the \
                members taking part (every baton run --shards M of KEY). This member runs one CMD per shard it \
                owns, with BATON_SHARD (0 ... M-1) and that shard's BATON_TOKEN; everything above holds per shard. \
                When a member joins or leaves, the fewest shards move: a shard moving away has its CMD stopped \
                (SIGTERM, SIGKILL after the grace) and is then released to its new owner. A CMD that exits, or a \
                lost shard without --retry, ends the member: the other CMDs are stopped the same way and baton \
                exits with that status. Every member of KEY must give the same M (another M: exit 2).

                Cron mode (--round ROUND): a one-shot election of round ROUND of system KEY, with no lease. The \
                winner runs CMD and, if it exits 0, records the round as completed; the others print \
                "lost: winner is X" on standard error and exit 0 without running CMD (--lost-exit-code N to \
                change that). A winner that finds the round already completed does not run CMD again. The \
                identity defaults to the host name, so the same crontab line on five hosts runs the job once, \
                and a retry on the winning host after a failure runs it again.

                Status lines ("waiting: KEY is held by X (token N) since 14:03:12") go to standard error; \
                --quiet silences them, and the losers' line in cron mode.

                Exit status: CMD's status when it ran to its end; 75 leadership was lost while CMD ran (CMD was \
                stopped); 126 CMD could not be executed; 127 CMD was not found; 128 + N baton was stopped by \
                signal N before CMD started; 0 (or --lost-exit-code) cron mode lost or the round was already \
                completed; 2 invalid argument (a malformed name or duration, a grace that does not fit in the \
                ttl); 3 the store failed (cron mode: also when CMD succeeded but its completion could not be \
                recorded).

                Examples:
                  baton run --key jobs/mailer -- ./mailer --queue outgoing
                  baton run --key jobs/mailer --ttl 1s --retry -- sh -c 'exec ./mailer'
                  baton run --key nightly --round "$(date +%F)" --quiet -- ./clean.sh
                (in a crontab, write % as \\%)
                """
        )

        @OptionGroup var options: StoreOptions

        @Option(help: ArgumentHelp("The key to lead; with --round, the system whose round it is.", valueName: "key"))
        var key: String

        @Option(
            help: ArgumentHelp(
                "This candidate's identity (default: hostname:pid; with --round, the host name).", valueName: "id")
        )
        var id: String?

        @Option(help: ArgumentHelp("The lease time to live: 250ms, 10s, 5m.", valueName: "time"))
        var ttl: String = "10s"

        @Option(
            help: ArgumentHelp(
                "Time between SIGTERM and SIGKILL when CMD is stopped (default: max(ttl/5, 100ms)).",
                valueName: "time")
        )
        var grace: String?

        @Option(
            name: .customLong("renew-interval"),
            help: ArgumentHelp(
                "How often the lease is renewed (default: min(ttl/3, (ttl - margin - grace)/2)).", valueName: "time")
        )
        var renewInterval: String?

        @Option(help: ArgumentHelp("What the leader publishes (at most 4 KiB), e.g. its address.", valueName: "text"))
        var metadata: String?

        @Option(
            help: ArgumentHelp(
                "Run as one of up to N holders of KEY at once (a semaphore); CMD gets BATON_SLOT.", valueName: "n"))
        var holders: Int?

        @Option(
            help: ArgumentHelp(
                "Run as a member of KEY's M shards: one CMD per shard owned, with BATON_SHARD.", valueName: "m"))
        var shards: Int?

        @Flag(help: "After losing leadership (and stopping CMD), campaign again instead of exiting.")
        var retry = false

        @Flag(help: "Print no status lines on standard error; errors are still printed.")
        var quiet = false

        @Flag(
            name: .customLong("pass-store-credentials"),
            help: ArgumentHelp(
                "Hand CMD the store's variables: BATON_STORE, BATON_STORE_FILE and, for an s3: store, "
                    + "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (withheld by default)."))
        var passStoreCredentials = false

        @Option(help: ArgumentHelp("Cron mode: elect one winner of this round of system KEY.", valueName: "round"))
        var round: String?

        @Option(
            name: .customLong("lost-exit-code"),
            help: ArgumentHelp("Cron mode: the exit status when CMD did not run here (default: 0).", valueName: "n")
        )
        var lostExitCode: Int32 = 0

        @Option(help: ArgumentHelp("Cron mode: how long the round's record is kept.", valueName: "time"))
        var retention: String = "7d"

        @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --."))
        var command: [String] = []

        func validate() throws {
            if command.isEmpty {
                throw ValidationError("Name the command after --: baton run --key KEY -- CMD [ARGS...]")
            }
            if round != nil && retry {
                throw ValidationError("--retry has no meaning with --round: a round is elected once")
            }
            if let holders {
                if round != nil {
                    throw ValidationError("--holders has no meaning with --round: a round has one winner")
                }
                if !(1...SemaphoreElector.maxPermits).contains(holders) {
                    throw ValidationError("--holders must be within 1...\(SemaphoreElector.maxPermits), got \(holders)")
                }
            }
            if let shards {
                if round != nil {
                    throw ValidationError("--shards has no meaning with --round: a round has one winner")
                }
                if holders != nil {
                    throw ValidationError("--shards and --holders cannot be used together")
                }
                if !(1...ShardedElector.maxShards).contains(shards) {
                    throw ValidationError("--shards must be within 1...\(ShardedElector.maxShards), got \(shards)")
                }
            }
            if !(0...255).contains(lostExitCode) {
                throw ValidationError("--lost-exit-code must be within 0...255, got \(lostExitCode)")
            }
        }

        func run() async throws {
            try await CommandOutcome.run {
                let ttl = try parseDurationOption(ttl, option: "--ttl")
                let grace = try grace.map { try parseDurationOption($0, option: "--grace") }
                let renewInterval = try renewInterval.map { try parseDurationOption($0, option: "--renew-interval") }
                let retention = try parseDurationOption(retention, option: "--retention")
                let timing = try RunTiming.resolve(ttl: ttl, grace: grace, renewInterval: renewInterval)
                if let round {
                    try BatonValidation.name(key, "--key")
                    try BatonValidation.name(round, "--round")
                    let candidate = try Candidate.resolve(id)
                    return try await options.withStore { store in
                        try await runRound(
                            store: store, round: round, candidate: candidate, retention: retention,
                            grace: timing.grace)
                    }
                }
                try BatonValidation.name(key, "--key")
                let holder = id ?? LeaderElector.defaultHolder
                try BatonValidation.name(holder, "--id")
                try BatonValidation.metadata(metadata)
                return try await options.withStore { store in
                    if let shards {
                        return try await runShards(store: store, holder: holder, timing: timing, shards: shards)
                    }
                    if let holders {
                        return try await runHolder(store: store, holder: holder, timing: timing, permits: holders)
                    }
                    return try await runLeader(store: store, holder: holder, timing: timing)
                }
            }
        }

        /// The environment CMD starts with: baton's own, without the store's variables unless
        /// `--pass-store-credentials` (``StoreOptions/commandEnvironment(_:store:passCredentials:)``).
        func commandEnvironment() throws(BatonError) -> [String: String] {
            StoreOptions.commandEnvironment(
                ProcessInfo.processInfo.environment, store: try options.storeURL(),
                passCredentials: passStoreCredentials)
        }

        /// Every elector's configuration from the resolved timing and `--metadata`, and their logger (silent:
        /// `baton run` reports on standard error itself).
        func electorSettings(_ timing: RunTiming) -> (ElectorConfiguration, Logger) {
            let configuration = ElectorConfiguration(
                ttl: timing.ttl,
                renewInterval: timing.renewInterval,
                safetyMargin: timing.electorMargin,
                metadata: metadata
            )
            var logger = Logger(label: "baton.run")
            logger.logLevel = .critical
            return (configuration, logger)
        }

        /// The name CMD is given in messages.
        var commandName: String { command.first ?? "" }

        // MARK: Continuous leadership

        private func runLeader(store: LeaseStore, holder: String, timing: RunTiming) async throws -> Int32 {
            let (configuration, logger) = electorSettings(timing)
            let elector = try LeaderElector(
                store: store, key: key, holder: holder, configuration: configuration, logger: logger)
            let reporter = StatusReporter(key: key, holder: holder, command: commandName, quiet: quiet)
            let supervisor = RunSupervisor(
                grace: timing.grace, resignOnLoss: !retry, retry: retry, resign: { elector.resign() },
                // The term's time left, live; its token checked on both sides of the read.
                timeLeft: { token in elector.timeLeft(in: token) },
                reporter: reporter)
            let signals = StopSignals { supervisor.received($0) }
            defer { signals.cancel() }
            let jobControl = StopSignals(StopSignals.jobControl) { supervisor.jobControl($0) }
            defer { jobControl.cancel() }
            await ElectorRehearsal.run(configuration: configuration)
            return try await leadInCampaign(
                elector, holder: holder, supervisor: supervisor, reporter: reporter
            ) {
                try await elector.run()
            }
        }

        /// Runs `campaign` (the elector's `run()`) and the command in its terms (``lead(_:holder:supervisor:reporter:variables:)``),
        /// the supervisor following the elector's events; resigns when the command is done with, and returns once the
        /// campaign has ended.
        ///
        /// The campaign belongs to `run()`, not to `withLeadership`: when the command is gone, resign() lets the
        /// elector release whatever it holds, also a lease an acquire in flight is still granting (cancelling a
        /// campaign would abandon that one until it expires).
        func leadInCampaign(
            _ elector: LeaderElector,
            holder: String,
            supervisor: RunSupervisor,
            reporter: StatusReporter,
            variables: [String: String] = [:],
            campaign: @escaping @Sendable () async throws -> Void
        ) async throws -> Int32 {
            let events = elector.events
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await supervisor.follow(events) }
                defer { group.cancelAll() }
                async let running: Void = campaign()
                await supervisor.waitForCampaign()
                let status: Int32
                do {
                    status = try await lead(
                        elector, holder: holder, supervisor: supervisor, reporter: reporter, variables: variables)
                } catch {
                    elector.resign()
                    try? await running
                    throw error
                }
                elector.resign()
                try await running
                // Released: what is left of this process (closing the store's connections, exiting) runs at the
                // lowest CPU priority, so that it does not slow down a successor starting its command on this host.
                _ = baton_lower_priority(19)
                return status
            }
        }

        // MARK: Cron mode

        private func runRound(
            store: LeaseStore,
            round: String,
            candidate: String,
            retention: Duration,
            grace: Duration
        ) async throws -> Int32 {
            let supervisor = RunSupervisor(grace: grace)
            let signals = StopSignals { supervisor.received($0) }
            defer { signals.cancel() }
            let jobControl = StopSignals(StopSignals.jobControl) { supervisor.jobControl($0) }
            defer { jobControl.cancel() }
            return try await withThrowingTaskGroup(of: Void.self) { group in
                defer { group.cancelAll() }
                let election = try RoundElection(store: store, system: key, retention: retention)
                if case .lost(let winner) = try await election.claim(round: round, candidate: candidate) {
                    if !quiet { CommandOutcome.printError("lost: winner is \(winner)") }
                    return lostExitCode
                }
                if let completer = try await election.completion(round: round) {
                    if !quiet {
                        CommandOutcome.printError(
                            "\(key)/\(round) was already completed by \(completer); not running \(commandName)")
                    }
                    return lostExitCode
                }
                if let signal = supervisor.stopSignal { return 128 + signal }
                guard supervisor.beginStarting() else { return 128 + (supervisor.stopSignal ?? SIGTERM) }
                let (traceParent, inherited) = TraceParent.inherited(try commandEnvironment())
                var environment = inherited
                var generator = SystemRandomNumberGenerator()
                environment[TraceParent.variable] = TraceParent.term(in: traceParent, using: &generator).header
                environment["BATON_KEY"] = key
                environment["BATON_ROUND"] = round
                environment["BATON_HOLDER"] = candidate
                environment["BATON_TOKEN"] = nil
                let child: ChildProcess
                do throws(ChildProcess.SpawnError) {
                    child = try await ChildProcess.spawn(command, environment: environment)
                } catch {
                    CommandOutcome.printError("cannot run \(commandName): \(error.reason)")
                    return error.exitCode
                }
                supervisor.started(child)
                let exit = await child.exitWithGroup(grace: grace)
                supervisor.finished()
                guard exit.code == 0 else { return exit.code }
                do {
                    try await election.complete(round: round, candidate: candidate)
                } catch {
                    CommandOutcome.printError(
                        "\(commandName) succeeded but recording the completion of \(key)/\(round) failed: "
                            + CommandOutcome.message(for: error))
                    return CommandOutcome.status(for: error)
                }
                return CommandOutcome.success
            }
        }
    }
}
