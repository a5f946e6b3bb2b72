import Foundation

/// One pass of a ``ScheduledJob`` over the rounds that are due, made while its host holds the job's lease: the
/// lease orders the passes of every host, so each decision about a round (run it, run it again, report it missed
/// or skipped) is made by one host at a time, and recorded in the round's completion before the lease passes on.
package struct CronPass: Sendable {
    package let store: LeaseStore
    package let key: String
    package let holder: String
    package let schedule: CronSchedule
    package let policy: CronPolicy
    package let retention: Duration
    package let clock: BatonClock
    package let wallNow: @Sendable () -> Date

    /// The lease's term a pass runs in.
    package struct Term: Sendable {
        var token: FencingToken
        var elector: LeaderElector?
    }

    /// What a pass did.
    package struct Report: Sendable {
        /// The wall time through which every tick has been handled.
        package var watermark: Date
        /// The rounds this pass recorded, oldest first.
        package var outcomes: [(round: String, outcome: CronOutcome)] = []
    }

    /// Handles every round due after `watermark` (or, with nil, every round within the lookback that nobody
    /// recorded), holding the job's lease in the term `token`. Runs `job` for the rounds to run.
    /// A job that returns is recorded as run even if the pass is cancelled meanwhile; the pass then returns what it
    /// recorded, leaving later rounds to the next holder.
    /// - Throws: `CancellationError` if cancelled (the lease ended, the host stops) while a job ran: that run is not
    ///   recorded, and the next holder sees a round begun and not completed; store errors (the pass is repeated).
    package func handle(
        since watermark: Date?,
        token: FencingToken,
        elector: LeaderElector? = nil,
        job: @escaping @Sendable (CronRound) async throws -> Void
    ) async throws -> Report {
        let start = wallNow()
        let due: [Date]
        if let watermark {
            due = schedule.ticks(after: watermark, through: start)
        } else {
            due = try await unrecorded(through: start)
        }
        var report = Report(watermark: start)
        let term = Term(token: token, elector: elector)
        var ranAny = try await handleDue(due, at: start, term: term, job: job, into: &report)
        // Ticks that came due meanwhile: after a run, they overlapped it; else they are simply due now.
        var checked = start
        // A pass being stopped ends after the round it recorded last: the next holder takes it from there.
        while !Task.isCancelled {
            let now = wallNow()
            let next = schedule.ticks(after: checked, through: now)
            checked = now
            report.watermark = now
            if next.isEmpty { return report }
            if !ranAny {
                ranAny = try await handleDue(next, at: now, term: term, job: job, into: &report)
                continue
            }
            for tick in next {
                switch policy.overlap {
                case .skip:
                    try await record(.skipped(reportedBy: holder), of: tick, into: &report)
                case .wait:
                    try await run(tick, reason: .afterOverlap, term: term, job: job, into: &report)
                }
                if Task.isCancelled { break }
            }
        }
        return report
    }

    /// The most ticks a pass looks back over (a day of an every-minute job).
    static let lookbackTicks = 1_440

    /// The ticks within the lookback (at most ``lookbackTicks`` of them) after the latest recorded round, oldest
    /// first. With no round recorded there (a new job, or every host down for longer), only the ticks still on
    /// time and the latest ones begun and never completed: earlier ones are not counted as missed.
    ///
    /// Rounds are recorded oldest first, so the recorded ones come before the others: the boundary is found with
    /// a few reads (probing back 1, 2, 4, … ticks, then halving), not one per tick.
    func unrecorded(through now: Date) async throws -> [Date] {
        let ticks = recentTicks(through: now)
        guard !ticks.isEmpty else { return [] }
        func recorded(_ index: Int) async throws -> Bool {
            try await store.completion(system: key, round: schedule.roundName(of: ticks[index])) != nil
        }
        var unrecordedFrom = ticks.endIndex - 1  // the earliest index known unrecorded
        if try await recorded(unrecordedFrom) { return [] }
        var step = 1
        var found: Int?
        while found == nil {
            let probe = max(unrecordedFrom - step, 0)
            if try await recorded(probe) {
                found = probe
            } else {
                unrecordedFrom = probe
                if probe == 0 { break }
                step *= 2
            }
        }
        guard var low = found else {
            // Nothing recorded: the rounds still on time and, before them, the latest rounds begun and never
            // completed (a winner that died as it started the job), back to one nobody began.
            var first = ticks.firstIndex { now.timeIntervalSince($0) <= policy.lateness.seconds } ?? ticks.endIndex
            while first > ticks.startIndex,
                try await store.winner(system: key, round: schedule.roundName(of: ticks[first - 1])) != nil
            {
                first -= 1
            }
            return Array(ticks[first...])
        }
        // ticks[low] is recorded, ticks[unrecordedFrom] is not.
        var high = unrecordedFrom
        while high - low > 1 {
            let middle = (low + high) / 2
            if try await recorded(middle) { low = middle } else { high = middle }
        }
        return Array(ticks[high...])
    }

    /// The ticks within the lookback, at most the latest ``lookbackTicks``, found in growing windows back from
    /// `now` (so a frequent schedule is not enumerated over the whole lookback).
    func recentTicks(through now: Date) -> [Date] {
        let earliest = now.addingTimeInterval(-policy.lookback.seconds)
        var window = max(policy.lateness.seconds, 60)
        while true {
            let from = max(earliest, now.addingTimeInterval(-window))
            let ticks = schedule.ticks(after: from, through: now, limit: Self.lookbackTicks)
            if ticks.count >= Self.lookbackTicks || from <= earliest { return ticks }
            window *= 4
        }
    }

    /// Decides and carries out the due ticks found at `now`; returns whether the job ran.
    private func handleDue(
        _ due: [Date],
        at now: Date,
        term: Term,
        job: @escaping @Sendable (CronRound) async throws -> Void,
        into report: inout Report
    ) async throws -> Bool {
        var plan: [(tick: Date, reason: CronRound.Reason?)] = []
        var late: [Int] = []
        for tick in due {
            let name = schedule.roundName(of: tick)
            if try await store.completion(system: key, round: name) != nil { continue }
            if try await store.winner(system: key, round: name) != nil {
                // Begun, never completed: its winner died or lost the lease.
                plan.append((tick, policy.delivery == .atLeastOnce ? .again : nil))
            } else if now.timeIntervalSince(tick) <= policy.lateness.seconds {
                plan.append((tick, .onTime))
            } else {
                late.append(plan.count)
                plan.append((tick, nil))
            }
        }
        // Of several rounds on time at once (a lateness longer than the schedule's interval), the latest runs; the
        // earlier ones were not run in their time.
        if let latest = plan.lastIndex(where: { $0.reason == .onTime }) {
            for index in plan.indices where index < latest && plan[index].reason == .onTime {
                plan[index].reason = nil
            }
        }
        if let window = policy.catchUpWindow, !plan.contains(where: { $0.reason == .onTime }),
            let latest = late.last, now.timeIntervalSince(plan[latest].tick) <= window.seconds
        {
            plan[latest].reason = .catchUp
        }
        var ran = false
        for (tick, reason) in plan where !Task.isCancelled {
            if let reason {
                try await run(tick, reason: reason, term: term, job: job, into: &report)
                ran = true
            } else {
                try await record(.missed(reportedBy: holder), of: tick, into: &report)
            }
        }
        return ran
    }

    /// Runs the round of `tick` and records how it ended.
    private func run(
        _ tick: Date,
        reason: CronRound.Reason,
        term: Term,
        job: @escaping @Sendable (CronRound) async throws -> Void,
        into report: inout Report
    ) async throws {
        let token = term.token
        let name = schedule.roundName(of: tick)
        // The claim marks the round begun: if this host dies before completing it, the next one knows.
        let claim = try await store.claim(system: key, round: name, candidate: holder, retention: retention)
        if !claim.isWon, policy.delivery == .atMostOnce, reason != .again {
            // Begun by another host since this pass looked (it cannot be: the lease orders passes), or
            // at-most-once: never a second run.
            try await record(.missed(reportedBy: holder), of: tick, into: &report)
            return
        }
        let round = CronRound(name: name, tick: tick, token: token, reason: reason, elector: term.elector)
        do {
            try await runWithTimeout { try await job(round) }
        } catch {
            // The lease ended (or the job is stopped): nothing is recorded; the next holder takes it from here.
            if Task.isCancelled { throw CancellationError() }
            try await record(.failed(holder: holder, token: token), of: tick, into: &report)
            return
        }
        // The job returned: that it ran is recorded even if the pass is being stopped meanwhile (a stop signal
        // that comes as a command ends), or another host would run the round again.
        try await recordEvenIfCancelled(.ran(holder: holder, token: token), of: tick, into: &report)
    }

    /// Records `outcome` in a task of its own, which the caller's cancellation does not end (the store's request
    /// deadline bounds it).
    private func recordEvenIfCancelled(_ outcome: CronOutcome, of tick: Date, into report: inout Report) async throws {
        let pass = self
        if try await Task(operation: { try await pass.write(outcome, of: tick) }).value {
            report.outcomes.append((schedule.roundName(of: tick), outcome))
        }
    }

    /// Runs `body`, cancelling it after the policy's run timeout.
    private func runWithTimeout(_ body: @escaping @Sendable () async throws -> Void) async throws {
        guard let timeout = policy.runTimeout else { return try await body() }
        let clock = self.clock
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await clock.sleep(for: timeout)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw BatonError.timeout("the run took longer than its timeout, \(timeout)") }
        }
    }

    private func record(_ outcome: CronOutcome, of tick: Date, into report: inout Report) async throws {
        if try await write(outcome, of: tick) { report.outcomes.append((schedule.roundName(of: tick), outcome)) }
    }

    /// Writes the round's completion; false if another pass recorded it already (a host that held the lease before).
    private func write(_ outcome: CronOutcome, of tick: Date) async throws -> Bool {
        do {
            try await store.complete(
                system: key, round: schedule.roundName(of: tick), by: .anonymous(outcome.record), retention: retention)
            return true
        } catch let error as BatonError where error.code == .alreadyCompleted {
            return false
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    var seconds: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
