/// Judges the records of a chaos run against the safety and liveness properties of leader election.
///
/// A *term* is every work record with one fencing token. Its *identity* is the holder and the campaigning
/// process (`baton run`, or the library worker) that wrote them: the command `baton run` starts may change
/// between two stretches of one term (the same holder renewing its own term after a demotion), the campaigner may
/// not.
///
/// ## Paused holders
/// The orchestrator stops a leader's process groups (SIGSTOP) for longer than the ttl and continues them
/// (SIGCONT). While stopped, the process cannot notice that its deadline passed; when it continues, its work may
/// still write until the campaigner stops it. No lease can prevent that: fencing tokens are what makes it
/// harmless. So a record is judged *stale* when all of these hold:
///
/// - its campaigner was paused from `p0` to `p1` (the pause and resume records);
/// - its term has a record before `p0` (the term began before the pause);
/// - it was written at or after `p1`, and no later than `p1 + staleWindow`.
///
/// Stale records are left out of the term's live interval. A stale record that falls inside another term's live
/// interval must carry the smaller token (a resource that keeps the largest token refuses it): such records are
/// counted as *fenced*; one with the larger token is a violation. A record written later than
/// `p1 + staleWindow` is live again, so a paused holder that keeps working is an overlap.
///
/// A process can also be paused without a signal: a host so loaded that a process does not run for longer than
/// the margin (here: a writer whose consecutive records of one term are more than `pauseGap` apart). Such a
/// gap is judged like a pause from the earlier record to the later one, and counted as an *involuntary pause*.
///
/// ## Stores that lose data
/// A `wipe` fault restarts the store without its data (Redis without persistence): the store forgets the
/// current term, so a new leader can be elected before the old one learns, at its next renew, that its term is
/// gone. The contract promises only that tokens keep rising across such a loss. So a wipe at `w` is judged like a
/// pause of every holder from `w` to `w`: records of terms that began before `w`, written within the stale window
/// after it, are stale and must be fenced (counted apart, as ``Report/fencedAfterDataLoss``).
///
/// ## Properties
/// 1. **one holder per token**: every token is written by one identity (else a *duplicated token*);
/// 2. **tokens rise with time**: ordered by the first live record, every term's token is larger than all the
///    tokens before it;
/// 3. **no overlapping terms**: no two terms' live intervals (first to last live record) intersect, and every
///    stale record is fenced;
/// 4. **elections continue**: between the first record and the end of the run no stretch longer than
///    `livenessBound` passes without a live record, and after every fault aimed at a leader a term with a larger
///    token than the target's starts within `livenessBound` — or within the tighter bound that
///    ``Configuration/faultBounds`` sets for that kind of fault (e.g. 3 ttl after a `drop-waiters`: the waiting
///    candidates' connections go silent while the leader is killed).
///
/// Failover is the time from a fault that stops a leader without a release (`kill`, `stop`, `stop-baton`,
/// `blackhole`, `drop-waiters`, `partition`) to the first record of the next term; handover the same from a
/// graceful stop (`term`).
public struct ChaosChecker: Sendable {
    /// How records are judged.
    public struct Configuration: Sendable, Hashable {
        /// How long after a resume a paused holder's records count as stale (ns).
        public var staleWindow: Int64
        /// The longest time without a leader that still counts as "elections continue" (ns).
        public var livenessBound: Int64
        /// Consecutive records of one writer and term further apart than this show that the writer did not run
        /// in between (ns): an involuntary pause.
        public var pauseGap: Int64
        /// Tighter bounds than `livenessBound` for the next term after a fault of a kind (ns, by kind).
        public var faultBounds: [String: Int64]

        public init(
            staleWindow: Int64, livenessBound: Int64, pauseGap: Int64 = .max, faultBounds: [String: Int64] = [:]
        ) {
            self.staleWindow = staleWindow
            self.livenessBound = livenessBound
            self.pauseGap = pauseGap
            self.faultBounds = faultBounds
        }
    }

    /// One property and its verdict.
    public struct Check: Sendable, Hashable {
        public var name: String
        public var passed: Bool
        /// The first violations found (at most a few), empty when passed.
        public var details: [String]
    }

    /// What a run showed.
    public struct Report: Sendable, Hashable {
        public var checks: [Check]
        /// Faults injected.
        public var faults: Int
        /// Faults injected, by kind.
        public var faultKinds: [String: Int]
        /// Overlaps by the kind of the fault last aimed at the earlier term before the later one began (`none`
        /// without such a fault; `stale` for a stale record that was not fenced).
        public var overlapsByKind: [String: Int]
        /// Gaps longer than the pause gap between consecutive records of one writer and term (the injected stops
        /// show as such gaps too).
        public var involuntaryPauses: Int
        /// Distinct tokens seen.
        public var terms: Int
        /// Pairs of terms whose live intervals intersect, plus stale records that were not fenced.
        public var overlaps: Int
        /// Tokens written by more than one identity.
        public var duplicatedTokens: Int
        /// Stale records of paused holders inside a newer term, which a resource keeping the largest token
        /// refuses.
        public var fencedStaleRecords: Int
        /// Of those, the records of a holder whose term the store forgot (a `wipe`), not of a paused one.
        public var fencedAfterDataLoss: Int
        /// Median time from a crash-like fault to the next term's first record (ms), if any.
        public var failoverMedian: Double?
        /// Median time from a graceful stop to the next term's first record (ms), if any.
        public var handoverMedian: Double?
        /// The number of failovers and handovers measured.
        public var failovers: Int
        public var handovers: Int
        /// The longest time from a resume (or a wipe) to a fenced stale record (ms): how long a paused or forgotten
        /// leader's work went on beside a newer term.
        public var longestStaleWork: Double

        public var passed: Int { checks.filter(\.passed).count }
        public var failed: Int { checks.count - passed }
    }

    struct Identity: Hashable, CustomStringConvertible {
        var holder: String
        var campaigner: Int32
        var description: String { "\(holder) (pid \(campaigner))" }
    }

    struct Term {
        var token: Int64
        var identities: Set<Identity>
        var live: [Int64] = []
        var stale: [Int64] = []
        /// Which stale records are stale because of a wipe rather than a pause.
        var afterDataLoss: Set<Int64> = []
        /// How long after its resume (or wipe) each stale record was written.
        var staleness: [Int64: Int64] = [:]
        var liveStart: Int64 { live.first ?? .max }
        var liveEnd: Int64 { live.last ?? .min }
    }

    public let configuration: Configuration

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Judges `records` (in any order).
    public func check(_ records: [ChaosRecord]) -> Report {
        var work: [ChaosRecord.Work] = []
        var faults: [ChaosRecord.Fault] = []
        var pauseStarts: [Int32: [Int64]] = [:]
        var resumes: [Int32: [Int64]] = [:]
        var finish: Int64?
        for record in records {
            switch record {
            case .work(let record): work.append(record)
            case .fault(let fault): faults.append(fault)
            case .pause(let time, let campaigner): pauseStarts[campaigner, default: []].append(time)
            case .resume(let time, let campaigner): resumes[campaigner, default: []].append(time)
            case .finish(let time): finish = max(finish ?? time, time)
            }
        }
        work.sort { $0.time < $1.time }
        faults.sort { $0.time < $1.time }
        let pauses = Self.pairPauses(starts: pauseStarts, resumes: resumes, end: finish ?? work.last?.time ?? 0)
        let wipes = faults.filter { $0.kind == "wipe" }.map { ($0.time, $0.time) }

        // Involuntary pauses: gaps between consecutive records of one writer in one term.
        var gaps: [Int64: [(Int64, Int64)]] = [:]
        var previous: [String: Int64] = [:]
        for record in work {
            let writer = "\(record.token)/\(record.pid)"
            if let last = previous[writer], record.time - last > configuration.pauseGap {
                // A gap that starts at the term's first record counts too: the pause is from `last` on.
                gaps[record.token, default: []].append((last + 1, record.time))
            }
            previous[writer] = record.time
        }
        var terms: [Int64: Term] = [:]
        var longestStale: Int64 = 0
        for record in work {
            let identity = Identity(holder: record.holder, campaigner: record.campaigner)
            var term = terms[record.token] ?? Term(token: record.token, identities: [])
            term.identities.insert(identity)
            if let since = staleness(record, term: term, pauses: pauses[record.campaigner] ?? []) {
                term.stale.append(record.time)
                term.staleness[record.time] = since
            } else if let since = staleness(record, term: term, pauses: gaps[record.token] ?? []) {
                term.stale.append(record.time)
                term.staleness[record.time] = since
            } else if let since = staleness(record, term: term, pauses: wipes) {
                term.stale.append(record.time)
                term.afterDataLoss.insert(record.time)
                term.staleness[record.time] = since
            } else {
                term.live.append(record.time)
            }
            terms[record.token] = term
        }
        let ordered = terms.values.filter { !$0.live.isEmpty }.sorted { $0.liveStart < $1.liveStart }

        var checks: [Check] = []
        // 1. One holder per token.
        let duplicated = terms.values.filter { $0.identities.count > 1 }.sorted { $0.token < $1.token }
        checks.append(
            Check(
                name: "one holder per token", passed: duplicated.isEmpty,
                details: duplicated.prefix(3).map { term in
                    "token \(term.token) written by "
                        + term.identities.map(\.description).sorted().joined(separator: " and ")
                }))

        // 2. Tokens rise with time.
        var rising: [String] = []
        var largest: Term?
        for term in ordered {
            if let previous = largest, term.token <= previous.token {
                rising.append(
                    "token \(term.token) began at \(Self.ms(term.liveStart)) ms, after token \(previous.token) "
                        + "(began at \(Self.ms(previous.liveStart)) ms)")
            }
            if term.token > largest?.token ?? .min { largest = term }
        }
        checks.append(Check(name: "tokens rise with time", passed: rising.isEmpty, details: Array(rising.prefix(3))))

        // 3. No overlapping terms; stale records fenced.
        var overlapDetails: [String] = []
        var overlaps = 0
        var overlapsByKind: [String: Int] = [:]
        for (index, later) in ordered.enumerated() {
            for earlier in ordered[..<index] where earlier.liveEnd >= later.liveStart {
                overlaps += 1
                // The fault aimed at the earlier term last before the later one began, if any.
                let cause = faults.last { $0.token == earlier.token && $0.time <= later.liveStart }
                overlapsByKind[cause?.kind ?? "none", default: 0] += 1
                overlapDetails.append(
                    "token \(earlier.token) worked until \(Self.ms(earlier.liveEnd)) ms, token \(later.token) "
                        + "began at \(Self.ms(later.liveStart)) ms (\(Self.ms(earlier.liveEnd - later.liveStart)) ms "
                        + "of overlap" + (cause.map { ", after the \($0.kind) at \(Self.ms($0.time)) ms" } ?? "") + ")")
            }
        }
        var fenced = 0
        var fencedAfterDataLoss = 0
        for stale in terms.values {
            for time in stale.stale {
                for other in ordered
                where other.token != stale.token && other.liveStart <= time && time <= other.liveEnd {
                    if stale.token < other.token {
                        fenced += 1
                        longestStale = max(longestStale, stale.staleness[time] ?? 0)
                        if stale.afterDataLoss.contains(time) { fencedAfterDataLoss += 1 }
                    } else {
                        overlaps += 1
                        overlapsByKind["stale", default: 0] += 1
                        overlapDetails.append(
                            "stale token \(stale.token) wrote at \(Self.ms(time)) ms during the term of the smaller "
                                + "token \(other.token)")
                    }
                }
            }
        }
        checks.append(
            Check(name: "no overlapping terms", passed: overlaps == 0, details: Array(overlapDetails.prefix(3))))

        // 4. Elections continue.
        var stuck: [String] = []
        if let first = ordered.first {
            var covered = first.liveEnd
            var intervals = ordered.map { ($0.liveStart, $0.liveEnd) }
            if let finish { intervals.append((finish, finish)) }
            for (start, end) in intervals.sorted(by: { $0.0 < $1.0 }) {
                if start - covered > configuration.livenessBound {
                    stuck.append(
                        "no leader worked from \(Self.ms(covered)) ms to \(Self.ms(start)) ms "
                            + "(\(Self.ms(start - covered)) ms)")
                }
                covered = max(covered, end)
            }
        } else {
            stuck.append("no leader ever worked")
        }
        var failovers: [Int64] = []
        var handovers: [Int64] = []
        for fault in faults {
            guard let token = fault.token else { continue }
            let bound = configuration.faultBounds[fault.kind] ?? configuration.livenessBound
            let successor = ordered.first { $0.liveStart > fault.time && $0.token > token }
            guard let successor, successor.liveStart - fault.time <= bound else {
                if let finish, finish - fault.time <= bound { continue }
                let late = successor.map { " (it began \(Self.ms($0.liveStart - fault.time)) ms after)" } ?? ""
                stuck.append(
                    "no term after token \(token) began within \(Self.ms(bound)) ms after the \(fault.kind) at "
                        + "\(Self.ms(fault.time)) ms\(late)")
                continue
            }
            switch fault.kind {
            case "kill", "stop", "stop-baton", "blackhole", "drop-waiters", "partition":
                failovers.append(successor.liveStart - fault.time)
            case "term": handovers.append(successor.liveStart - fault.time)
            default: break
            }
        }
        checks.append(Check(name: "elections continue", passed: stuck.isEmpty, details: Array(stuck.prefix(3))))

        return Report(
            checks: checks,
            faults: faults.count,
            faultKinds: faults.reduce(into: [:]) { $0[$1.kind, default: 0] += 1 },
            overlapsByKind: overlapsByKind,
            involuntaryPauses: gaps.values.reduce(0) { $0 + $1.count },
            terms: terms.count,
            overlaps: overlaps,
            duplicatedTokens: duplicated.count,
            fencedStaleRecords: fenced,
            fencedAfterDataLoss: fencedAfterDataLoss,
            failoverMedian: Self.median(failovers),
            handoverMedian: Self.median(handovers),
            failovers: failovers.count,
            handovers: handovers.count,
            longestStaleWork: Double(longestStale) / 1e6
        )
    }

    /// If `record` is a stale record of a paused holder (see the type's documentation), how long after the
    /// resume it was written; nil for a live record.
    private func staleness(_ record: ChaosRecord.Work, term: Term, pauses: [(Int64, Int64)]) -> Int64? {
        guard let termStart = term.live.first else { return nil }
        let pause = pauses.first { pause, resume in
            termStart < pause && resume <= record.time && record.time <= resume + configuration.staleWindow
        }
        return pause.map { record.time - $0.1 }
    }

    /// Pairs every pause of a campaigner with its next resume (or `end` when it was never resumed).
    static func pairPauses(starts: [Int32: [Int64]], resumes: [Int32: [Int64]], end: Int64) -> [Int32: [(Int64, Int64)]]
    {
        var paired: [Int32: [(Int64, Int64)]] = [:]
        for (campaigner, times) in starts {
            let after = (resumes[campaigner] ?? []).sorted()
            paired[campaigner] = times.sorted().map { start in (start, after.first { $0 >= start } ?? end) }
        }
        return paired
    }

    static func median(_ values: [Int64]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        let nanoseconds =
            sorted.count % 2 == 1 ? Double(sorted[middle]) : (Double(sorted[middle - 1]) + Double(sorted[middle])) / 2
        return nanoseconds / 1e6
    }

    static func ms(_ nanoseconds: Int64) -> Int64 { nanoseconds / 1_000_000 }
}
