import Foundation

/// What a ``ScheduledJob`` does when rounds are missed, when a run outlives the next tick, and when a winner dies.
public struct CronPolicy: Sendable, Hashable {
    /// What happens to a round whose winner died (or lost its lease) before it completed.
    public enum Delivery: String, Sendable, Hashable, CaseIterable {
        /// Another host runs the round again once the winner's lease has expired, with a larger fencing token
        /// (the job may run more than once for one tick, and the token lets it deduplicate). The default.
        case atLeastOnce = "at-least-once"
        /// The round is reported missed: the job runs at most once per tick.
        case atMostOnce = "at-most-once"
    }

    /// What happens to ticks that come due while a run of the job is still going.
    public enum Overlap: String, Sendable, Hashable, CaseIterable {
        /// They are skipped (recorded and counted as skipped). The default.
        case skip
        /// They run one after another once the run in progress ends, oldest first, each once.
        case wait
    }

    /// See ``Delivery``.
    public var delivery: Delivery
    /// See ``Overlap``.
    public var overlap: Overlap
    /// Rounds missed while no host could run them (every host down, the job's lease unreachable) are reported
    /// missed; with a window, the latest of them is run once on recovery if it is at most this old and no
    /// on-time round runs at the same time. Nil (the default): missed rounds are only reported.
    public var catchUpWindow: Duration?
    /// A run still going after this long is cancelled (a command is stopped) and the round recorded as failed.
    /// Nil (the default): no limit.
    public var runTimeout: Duration?
    /// How long after its tick a round still starts as on time: a round found later that nobody ran was missed.
    /// One minute by default; keep it above the hosts' clock skew.
    public var lateness: Duration
    /// How far back a host that starts looks for rounds nobody recorded (they were missed while every host was
    /// down). One day by default; at most the rounds' retention.
    public var lookback: Duration

    public init(
        delivery: Delivery = .atLeastOnce,
        overlap: Overlap = .skip,
        catchUpWindow: Duration? = nil,
        runTimeout: Duration? = nil,
        lateness: Duration = .seconds(60),
        lookback: Duration = .seconds(86_400)
    ) {
        self.delivery = delivery
        self.overlap = overlap
        self.catchUpWindow = catchUpWindow
        self.runTimeout = runTimeout
        self.lateness = lateness
        self.lookback = lookback
    }

    /// The hosts' clock skew the scheduling is stated for: each host's clock within 30 seconds of true time.
    public static let skewBound: Duration = .seconds(30)

    /// Checks the values.
    /// - Throws: ``BatonError`` `invalidArgument` naming the value.
    func validate(retention: Duration) throws(BatonError) {
        if let window = catchUpWindow, window <= .zero {
            throw .invalidArgument("the catch-up window must be positive, got \(window)")
        }
        if let timeout = runTimeout, timeout <= .zero {
            throw .invalidArgument("the run timeout must be positive, got \(timeout)")
        }
        if lateness <= .zero { throw .invalidArgument("the lateness must be positive, got \(lateness)") }
        if lookback < lateness || lookback > retention {
            throw .invalidArgument(
                "the lookback (\(lookback)) must be at least the lateness (\(lateness)) and at most the rounds' "
                    + "retention (\(retention))")
        }
    }
}

/// How a round of a ``ScheduledJob`` ended, as recorded in the store (the round's completion).
public enum CronOutcome: Sendable, Hashable, CustomStringConvertible {
    /// The job ran and returned (a command exited 0), on `holder`, under `token`.
    case ran(holder: String, token: FencingToken)
    /// The job ran and failed (threw, a command exited non-zero, or the run timed out).
    case failed(holder: String, token: FencingToken)
    /// Nobody ran the round in time (every host down, or its winner died under at-most-once); reported by `holder`.
    case missed(reportedBy: String)
    /// A run of the job was still going at the tick (overlap policy skip); recorded by `holder`.
    case skipped(reportedBy: String)

    /// The completion identity recorded in the store.
    var record: String {
        switch self {
        case .ran(let holder, let token): "ran with token \(token) by \(holder)"
        case .failed(let holder, let token): "failed with token \(token) by \(holder)"
        case .missed(let holder): "missed, reported by \(holder)"
        case .skipped(let holder): "skipped, recorded by \(holder)"
        }
    }

    /// Reads a recorded completion; nil if it is not one of a scheduled job.
    init?(record: String) {
        func run(_ prefix: String) -> (String, FencingToken)? {
            guard record.hasPrefix(prefix) else { return nil }
            let rest = record.dropFirst(prefix.count)
            guard let by = rest.firstRange(of: " by "), let token = FencingToken(rest[..<by.lowerBound]) else {
                return nil
            }
            return (String(rest[by.upperBound...]), token)
        }
        if let (holder, token) = run("ran with token ") {
            self = .ran(holder: holder, token: token)
        } else if let (holder, token) = run("failed with token ") {
            self = .failed(holder: holder, token: token)
        } else if record.hasPrefix("missed, reported by ") {
            self = .missed(reportedBy: String(record.dropFirst("missed, reported by ".count)))
        } else if record.hasPrefix("skipped, recorded by ") {
            self = .skipped(reportedBy: String(record.dropFirst("skipped, recorded by ".count)))
        } else {
            return nil
        }
    }

    public var description: String { record }
}

/// One round of a ``ScheduledJob`` handed to its job.
public struct CronRound: Sendable {
    /// The round's name: its tick in UTC (``CronSchedule/roundName(of:)``).
    public var name: String
    /// The tick.
    public var tick: Date
    /// The fencing token of this run: the token of the job's lease term it runs in, so larger than that of any
    /// run in an earlier term (also of this round's, if its earlier winner died). Runs one host makes in one
    /// term (a round run again, then the one on time; a tick run after the run it overlapped) share it. Hand it
    /// to what the job writes.
    public var token: FencingToken
    /// Why it runs: on time, again after its winner died, to catch up a missed round, or after a run that
    /// overlapped it.
    public var reason: Reason
    /// The elector holding the job's lease for this run, if any.
    let elector: LeaderElector?

    /// The time left in this run's term on the elector's clock, live (every renew moves it on); nil once the term
    /// is over. Work that must stop before the lease can pass to another host reads it.
    public var timeLeft: Duration? { elector?.timeLeft(in: token) }

    public enum Reason: String, Sendable, Hashable {
        case onTime = "on time"
        case again = "again after its winner died"
        case catchUp = "catching up a missed round"
        case afterOverlap = "after the run it overlapped"
    }
}
