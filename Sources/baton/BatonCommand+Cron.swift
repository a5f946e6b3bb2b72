import ArgumentParser
@_spi(BatonStoreKit) import Baton
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
    /// `baton cron SCHEDULE --key K -- CMD`: a distributed cron line (see ``ScheduledJob``).
    struct Cron: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a command once per tick of a cron schedule, on one of the hosts running the same line.",
            discussion: """
                Every host runs the same line and keeps running. Each tick of SCHEDULE is a round, named after \
                the tick in UTC; one host runs CMD for it, under the key's lease, with BATON_KEY, BATON_ROUND, \
                BATON_HOLDER, the lease's BATON_TOKEN and a TRACEPARENT of the run in its environment; how it ended is recorded in the \
                store, and each round is recorded once: ran, failed, missed or skipped. If the host running CMD \
                dies, another runs the round again once the lease has expired, with a larger token \
                (--at-most-once: reports it missed instead). Rounds nobody could run (every host down) are \
                reported missed; --catch-up TIME runs the latest of them once on recovery if it is that recent. \
                A tick that comes due while CMD still runs is skipped (--overlap wait: runs after it). CMD is \
                stopped (SIGTERM, SIGKILL --grace later) before the lease could pass to another host, also if \
                baton dies. Prints each round this host records on standard error; stops on SIGTERM or SIGINT.

                SCHEDULE: five fields (minute hour day-of-month month day-of-week), six with seconds first, or \
                @hourly, @daily, @weekly, @monthly, @yearly; read in --tz (UTC by default).

                Example (the same line on every host):
                  baton cron "0 3 * * *" --key nightly-cleaner --store redis://db:6379 -- ./clean.sh
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The schedule, e.g. \"0 3 * * *\" (quote it).")
        var schedule: String

        @Option(help: ArgumentHelp("The job's key: its lease, and the system of its rounds.", valueName: "key"))
        var key: String

        @Option(help: ArgumentHelp("This host's identity (default: hostname:pid).", valueName: "id"))
        var id: String?

        @Option(help: ArgumentHelp("The time zone the schedule is read in, e.g. Europe/Berlin.", valueName: "zone"))
        var tz = "UTC"

        @Option(help: ArgumentHelp("The lease time to live: 250ms, 10s, 5m.", valueName: "time"))
        var ttl = "10s"

        @Option(help: ArgumentHelp("Between SIGTERM and SIGKILL when CMD is stopped.", valueName: "time"))
        var grace = "2s"

        @Flag(help: "Report a round whose host died missed, rather than run it again.")
        var atMostOnce = false

        @Option(
            name: .customLong("catch-up"),
            help: ArgumentHelp(
                "Run the latest missed round once on recovery if it is at most this old.", valueName: "time"))
        var catchUp: String?

        @Option(help: ArgumentHelp("A tick that comes due while CMD runs: skip or wait.", valueName: "policy"))
        var overlap = "skip"

        @Option(help: ArgumentHelp("Stop CMD after this long and record the round failed.", valueName: "time"))
        var timeout: String?

        @Option(
            help: ArgumentHelp(
                "How long after its tick a round still starts on time (default: 60s, or the schedule's interval if "
                    + "shorter).", valueName: "time"))
        var lateness: String?

        @Flag(help: "Print nothing but errors.")
        var quiet = false

        @Flag(
            help: ArgumentHelp(
                "Hand CMD the store's variables: BATON_STORE, BATON_STORE_FILE and, for an s3: store, "
                    + "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (withheld by default)."))
        var passStoreCredentials = false

        @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
        var command: [String] = []

        func validate() throws {
            if command.isEmpty { throw ValidationError("give the command to run after --") }
            if CronPolicy.Overlap(rawValue: overlap) == nil {
                throw ValidationError("--overlap must be skip or wait, got \(overlap)")
            }
        }

        func run() async throws {
            try await CommandOutcome.run {
                guard let zone = TimeZone(identifier: tz) else {
                    throw BatonError.invalidArgument("--tz \(tz): not a time zone (e.g. UTC, Europe/Berlin)")
                }
                let schedule = try CronSchedule(self.schedule, timeZone: zone)
                let ttl = try parseDurationOption(ttl, option: "--ttl")
                let grace = try parseDurationOption(grace, option: "--grace")
                let policy = CronPolicy(
                    delivery: atMostOnce ? .atMostOnce : .atLeastOnce,
                    overlap: CronPolicy.Overlap(rawValue: overlap) ?? .skip,
                    catchUpWindow: try catchUp.map { try parseDurationOption($0, option: "--catch-up") },
                    runTimeout: try timeout.map { try parseDurationOption($0, option: "--timeout") },
                    lateness: try lateness.map { try parseDurationOption($0, option: "--lateness") }
                        ?? Self.defaultLateness(schedule))
                let holder = id ?? LeaderElector.defaultHolder
                try BatonValidation.name(holder, "--id")
                try BatonValidation.name(key, "--key")
                if grace >= ttl / 2 {
                    throw BatonError.invalidArgument("--grace (\(grace)) must be under half the --ttl (\(ttl))")
                }
                var logger = Logger(label: "baton.cron")
                logger.logLevel = .critical
                let inherited = TraceParent.inherited(
                    StoreOptions.commandEnvironment(
                        ProcessInfo.processInfo.environment, store: try options.storeURL(),
                        passCredentials: passStoreCredentials))
                var environment = inherited.environment
                environment["BATON_KEY"] = key
                environment["BATON_HOLDER"] = holder
                environment["BATON_TOKEN"] = nil
                let reporter = CronReporter(quiet: quiet)
                let childEnvironment = environment
                let roundsTrace = inherited.parent
                return try await options.withStore { store in
                    let job = try ScheduledJob(
                        store: store, key: key, holder: holder, schedule: schedule, policy: policy,
                        configuration: ElectorConfiguration(ttl: ttl), logger: logger)
                    reporter.say("\(holder) runs \(command[0]) at \(schedule) as \(key)")
                    let runner = Task {
                        try await job.run(onRecord: { reporter.recorded($0, $1, job.statistics) }) { round in
                            try await Self.run(
                                command, round: round, environment: childEnvironment, traceParent: roundsTrace,
                                grace: grace, reporter: reporter)
                        }
                    }
                    let signals = StopSignals { signal in
                        reporter.stopping(signal)
                        runner.cancel()
                    }
                    defer { signals.cancel() }
                    _ = try? await runner.value
                    let stats = job.statistics
                    reporter.say(
                        "stopped: this host recorded \(stats.ran) ran, \(stats.failed) failed, \(stats.missed) "
                            + "missed, \(stats.skipped) skipped")
                    return reporter.signal.map { 128 + $0 } ?? 0
                }
            }
        }

        /// 60 seconds, or the schedule's interval near now if that is shorter (a round is on time until the next).
        static func defaultLateness(_ schedule: CronSchedule) -> Duration {
            let now = Date()
            guard let first = schedule.nextTick(after: now), let second = schedule.nextTick(after: first) else {
                return .seconds(60)
            }
            return min(.seconds(60), .milliseconds(Int64(second.timeIntervalSince(first) * 1000)))
        }

        /// Runs CMD for `round` under its lease: the keeper kills it when the term's deadline passes (moved on as
        /// the lease is renewed), also if `baton` dies; a cancelled round (the lease lost, a stop signal) stops it
        /// and waits for its group. Throws if it could not start or did not exit 0.
        static func run(
            _ command: [String],
            round: CronRound,
            environment: [String: String],
            traceParent: TraceParent?,
            grace: Duration,
            reporter: CronReporter
        ) async throws {
            var environment = environment
            environment["BATON_ROUND"] = round.name
            let child = try await ChildProcess.prepare(command, environment: environment)
            defer { child.abandon() }
            guard let left = round.timeLeft else { throw CancellationError() }
            let term = UInt64(bitPattern: round.token)
            var generator = SystemRandomNumberGenerator()
            let trace = TraceParent.term(in: traceParent, using: &generator)
            reporter.say(
                "round \(round.name): running \(command[0]) with token \(round.token) (\(round.reason.rawValue), "
                    + "trace \(trace.traceIDString))")
            let outcome = try await child.launch(
                adding: ["BATON_TOKEN=\(round.token)", trace.environmentEntry], term: term, killAt: BootTime.now + left,
                grace: grace)
            if outcome == .refused { throw CancellationError() }
            let exit = await withTaskCancellationHandler {
                await withTaskGroup(of: ChildProcess.Exit?.self) { group in
                    // The keeper's kill time follows the term's deadline as renews move it.
                    group.addTask {
                        while !Task.isCancelled, let left = round.timeLeft {
                            child.extend(killAt: BootTime.now + left, term: term)
                            try? await Task.sleep(for: .milliseconds(200))
                        }
                        return nil
                    }
                    group.addTask { await child.exitWithGroup(grace: grace) }
                    var exit: ChildProcess.Exit?
                    while let next = await group.next() {
                        if let next {
                            exit = next
                            group.cancelAll()
                        }
                    }
                    return exit ?? ChildProcess.Exit(code: 1, signal: nil)
                }
            } onCancel: {
                child.stop(SIGTERM, grace: grace, once: true)
            }
            // Stopped (the lease ended, a stop signal): not a run. A command that ended by itself just before is one.
            if child.wasStoppedWhileRunning { throw CancellationError() }
            guard exit.code == 0 else {
                throw BatonError.invalidArgument("\(command[0]) exited \(exit.code)")
            }
        }
    }
}

/// What `baton cron` prints on standard error.
final class CronReporter: Sendable {
    let quiet: Bool
    private let received = Mutex<Int32?>(nil)

    init(quiet: Bool) {
        self.quiet = quiet
    }

    /// The stop signal received, if any.
    var signal: Int32? { received.withLock { $0 } }

    func say(_ line: String) {
        if !quiet { CommandOutcome.printError(line) }
    }

    func recorded(_ round: String, _ outcome: CronOutcome, _ statistics: ScheduledJob.Statistics) {
        let line = "round \(round): \(outcome)"
        if case .missed = outcome {
            CommandOutcome.printError("\(line) (\(statistics.missed) missed so far)")
        } else {
            say(line)
        }
    }

    func stopping(_ signal: Int32) {
        received.withLock { $0 = $0 ?? signal }
        say("stopping (\(signal == SIGINT ? "SIGINT" : "SIGTERM")): the running round's command, if any, is stopped")
    }
}
