import CoreMetrics
import Foundation
import Logging
import Synchronization

/// A distributed cron: every host runs the same ``ScheduledJob``; each tick of the schedule is a round, run once on
/// one host, under a lease whose fencing token the job gets.
///
/// ```swift
/// let job = try ScheduledJob(
///     store: store, key: "nightly-cleaner", schedule: try CronSchedule("0 3 * * *"),
///     policy: CronPolicy(catchUpWindow: .seconds(6 * 3600)))
/// try await job.run { round in
///     try await cleanUp(fencingToken: round.token)
/// }
/// ```
///
/// ## How a tick is run
/// At each tick (by its own clock) a host campaigns for the job's key as a lease. The host that holds it looks at
/// every round due since it last looked (on start, within ``CronPolicy/lookback`` after the latest recorded round),
/// and for each one not yet completed:
/// - a round nobody began, on time (at most ``CronPolicy/lateness`` after its tick): it claims the round (marking
///   it begun), runs the job with the lease's token, and records how it ended (ran, or failed);
/// - a round begun and never completed (its winner died, or lost the lease): under at-least-once it runs it again,
///   with its own, larger token; under at-most-once it reports it missed;
/// - a round nobody began and found late (every host was down, the lease unreachable): it reports it missed; with a
///   catch-up window, the latest of them, if that recent and if no on-time round runs, is run once instead;
/// - ticks that come due while the job runs: skipped, or run afterwards, oldest first (``CronPolicy/overlap``).
///
/// Then it releases the lease, and the other hosts, which waited for it, find the round recorded. Everything is
/// recorded in the round's completion (``CronOutcome``), one per round, made by whoever held the lease, so every
/// round is run once (again only after its winner died, with a larger token) or reported missed or skipped
/// exactly once, whichever host saw it. The counts are in ``statistics`` and in the metric
/// `baton_cron_rounds_total` (dimensions `key` and `outcome`: `ran`, `failed`, `missed`, `skipped`), counted by the
/// host that recorded them.
///
/// ## Clocks
/// Ticks are read in the schedule's time zone (see ``CronSchedule`` for daylight saving). A round's name comes from
/// its tick, never from a host's clock, so hosts whose clocks disagree run one round per tick, not one per clock;
/// a host whose clock is ahead starts a tick that much early. Keep the hosts' clocks within
/// ``CronPolicy/skewBound`` of true time, and ``CronPolicy/lateness`` above that.
public final class ScheduledJob: Sendable {
    /// Counts of the rounds this host recorded.
    public struct Statistics: Sendable, Hashable {
        public var ran = 0
        public var failed = 0
        public var missed = 0
        public var skipped = 0
        /// The latest rounds this host recorded, newest last (at most 20).
        public var recent: [String] = []
    }

    /// The store the job's lease and rounds live in.
    public let store: LeaseStore
    /// The job's key: its lease, and the system of its rounds.
    public let key: String
    /// This host's identity.
    public let holder: String
    /// When rounds come due.
    public let schedule: CronSchedule
    /// What happens to missed, overlapping and orphaned rounds.
    public let policy: CronPolicy
    /// The lease's configuration (its ttl bounds how long a dead winner's round waits before it runs again).
    public let configuration: ElectorConfiguration
    /// How long round records are kept.
    public let retention: Duration

    let pass: CronPass
    let makeElector: @Sendable () throws -> LeaderElector
    let logger: Logger
    private let counts = Mutex(Statistics())
    private let counters: [String: Counter]

    /// Creates a host's view of a scheduled job on the host's clocks.
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key or holder, or a policy or configuration
    ///   whose values do not fit.
    public convenience init(
        store: LeaseStore,
        key: String,
        holder: String = LeaderElector.defaultHolder,
        schedule: CronSchedule,
        policy: CronPolicy = CronPolicy(),
        configuration: ElectorConfiguration = ElectorConfiguration(),
        retention: Duration = RoundElection.defaultRetention,
        logger: Logger = Logger(label: "baton.cron")
    ) throws {
        try self.init(
            store: store, key: key, holder: holder, schedule: schedule, policy: policy, configuration: configuration,
            retention: retention, clock: ContinuousClock(), wallClock: { Date() }, logger: logger)
    }

    /// Creates a host's view of a scheduled job on the given clocks: `clock` (monotonic) times sleeps, leases and
    /// timeouts, `wallClock` tells the date the schedule is read against (both injected in tests).
    public init<C: Clock>(
        store: LeaseStore,
        key: String,
        holder: String = LeaderElector.defaultHolder,
        schedule: CronSchedule,
        policy: CronPolicy = CronPolicy(),
        configuration: ElectorConfiguration = ElectorConfiguration(),
        retention: Duration = RoundElection.defaultRetention,
        clock: C,
        wallClock: @escaping @Sendable () -> Date,
        logger: Logger = Logger(label: "baton.cron")
    ) throws where C.Duration == Duration {
        try BatonValidation.name(key, "key")
        try BatonValidation.name(holder, "holder")
        try BatonValidation.duration(retention, "retention")
        try configuration.validate()
        try policy.validate(retention: retention)
        self.store = store
        self.key = key
        self.holder = holder
        self.schedule = schedule
        self.policy = policy
        self.configuration = configuration
        self.retention = retention
        var logger = logger
        logger[metadataKey: "baton.key"] = "\(key)"
        logger[metadataKey: "baton.holder"] = "\(holder)"
        self.logger = logger
        self.pass = CronPass(
            store: store, key: key, holder: holder, schedule: schedule, policy: policy, retention: retention,
            clock: BatonClock(clock), wallNow: wallClock)
        let electorLogger = logger
        self.makeElector = {
            try LeaderElector(
                store: store, key: key, holder: holder, configuration: configuration, clock: clock,
                logger: electorLogger)
        }
        var counters: [String: Counter] = [:]
        for outcome in ["ran", "failed", "missed", "skipped"] {
            counters[outcome] = Counter(
                label: "baton_cron_rounds_total", dimensions: [("key", key), ("outcome", outcome)])
        }
        self.counters = counters
    }

    /// The rounds this host recorded so far.
    public var statistics: Statistics { counts.withLock { $0 } }

    /// Runs the job's rounds as they come due, until the task is cancelled; calls `onRecord` with each round this
    /// host records.
    ///
    /// `job` gets each round to run, with the fencing token of this host's lease; it is cancelled if the lease
    /// ends while it runs (the round is then run again elsewhere, or reported missed, per the policy), or after the
    /// run timeout. A job that throws records the round as failed; it is not retried.
    /// - Throws: `CancellationError` when cancelled. Store errors are logged and retried at the next tick.
    public func run(
        onRecord: @escaping @Sendable (_ round: String, _ outcome: CronOutcome) -> Void = { _, _ in },
        _ job: @escaping @Sendable (CronRound) async throws -> Void
    ) async throws {
        var watermark: Date?
        while true {
            try Task.checkCancellation()
            let now = pass.wallNow()
            if let seen = watermark {
                guard let next = schedule.nextTick(after: seen) else {
                    try await pass.clock.sleep(for: .seconds(3600))
                    continue
                }
                if next > now {
                    // Woken at the tick, or within the hour to look at the wall clock again (it may have jumped).
                    try await pass.clock.sleep(for: min(.seconds(next.timeIntervalSince(now)), .seconds(3600)))
                    continue
                }
            }
            do {
                let report = try await onePass(since: watermark, job: job)
                for (round, outcome) in report.outcomes { onRecord(round, outcome) }
                watermark = report.watermark
            } catch let error as BatonError where !Task.isCancelled {
                logger.warning("a pass over the due rounds failed; trying again", metadata: ["baton.error": "\(error)"])
                try await pass.clock.sleep(for: configuration.ttl / 3)
            }
        }
    }

    /// Takes the job's lease (waiting for it), handles the due rounds, and releases it.
    package func onePass(
        since watermark: Date?,
        job: @escaping @Sendable (CronRound) async throws -> Void
    ) async throws -> CronPass.Report {
        let elector = try makeElector()
        let pass = self.pass
        let report = try await elector.withLeadership { lease in
            try await pass.handle(since: watermark, token: lease.token, elector: elector, job: job)
        }
        count(report)
        return report
    }

    private func count(_ report: CronPass.Report) {
        for (round, outcome) in report.outcomes {
            let name: String
            switch outcome {
            case .ran: name = "ran"
            case .failed: name = "failed"
            case .missed: name = "missed"
            case .skipped: name = "skipped"
            }
            counters[name]?.increment()
            counts.withLock { counts in
                switch outcome {
                case .ran: counts.ran += 1
                case .failed: counts.failed += 1
                case .missed: counts.missed += 1
                case .skipped: counts.skipped += 1
                }
                counts.recent.append("\(round): \(outcome)")
                if counts.recent.count > 20 { counts.recent.removeFirst(counts.recent.count - 20) }
            }
            if case .missed = outcome {
                logger.warning("round missed", metadata: ["baton.round": "\(round)"])
            } else {
                logger.info("round recorded", metadata: ["baton.round": "\(round)", "baton.outcome": "\(outcome)"])
            }
        }
    }
}
