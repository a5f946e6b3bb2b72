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

    /// What a pass did.
    package struct Report: Sendable {
        /// The wall time through which every tick has been handled.
        package var watermark: Date
        /// The rounds this pass recorded, oldest first.
        package var outcomes: [(round: String, outcome: CronOutcome)] = []
    }

    /// Handles every round due after `watermark` (or, with nil, every round within the lookback that nobody
    /// recorded), holding the job's lease in the term `token`. Runs `job` for the rounds to run.
    /// - Throws: `CancellationError` if the lease ended (the run in progress is not recorded: the next holder
    ///   sees a round begun and not completed); store errors (the pass is repeated).
    package func handle(
        since watermark: Date?,
        token: FencingToken,
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
        var ranAny = try await handleDue(due, at: start, token: token, job: job, into: &report)
        // Ticks that came due meanwhile: after a run, they overlapped it; else they are simply due now.
        var checked = start
        while true {
            let now = wallNow()
            let next = schedule.ticks(after: checked, through: now)
            checked = now
            report.watermark = now
            if next.isEmpty { return report }
            if !ranAny {
                ranAny = try await handleDue(next, at: now, token: token, job: job, into: &report)
                continue
            }
            for tick in next {
                switch policy.overlap {
                case .skip:
                    try await record(.skipped(reportedBy: holder), of: tick, into: &report)
                case .wait:
                    try await run(tick, reason: .afterOverlap, token: token, job: job, into: &report)
                }
            }
        }
    }

    /// The ticks within the lookback after the latest recorded round, oldest first. With no round recorded within
    /// the lookback (a new job, or every host down for longer), only the ticks still on time: earlier ones are
    /// not counted as missed.
    func unrecorded(through now: Date) async throws -> [Date] {
        let ticks = schedule.ticks(after: now.addingTimeInterval(-policy.lookback.seconds), through: now)
        var first = ticks.endIndex
        var recorded = false
        for index in ticks.indices.reversed() {
            if try await store.completion(system: key, round: schedule.roundName(of: ticks[index])) != nil {
                recorded = true
                break
            }
            first = index
        }
        if !recorded { return ticks.filter { now.timeIntervalSince($0) <= policy.lateness.seconds } }
        return Array(ticks[first...])
    }

    /// Decides and carries out the due ticks found at `now`; returns whether the job ran.
    private func handleDue(
        _ due: [Date],
        at now: Date,
        token: FencingToken,
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
        if let window = policy.catchUpWindow, !plan.contains(where: { $0.reason == .onTime }),
            let latest = late.last, now.timeIntervalSince(plan[latest].tick) <= window.seconds
        {
            plan[latest].reason = .catchUp
        }
        var ran = false
        for (tick, reason) in plan {
            if let reason {
                try await run(tick, reason: reason, token: token, job: job, into: &report)
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
        token: FencingToken,
        job: @escaping @Sendable (CronRound) async throws -> Void,
        into report: inout Report
    ) async throws {
        let name = schedule.roundName(of: tick)
        // The claim marks the round begun: if this host dies before completing it, the next one knows.
        let claim = try await store.claim(system: key, round: name, candidate: holder, retention: retention)
        if !claim.isWon, policy.delivery == .atMostOnce, reason != .again {
            // Begun by another host since this pass looked (it cannot be: the lease orders passes), or
            // at-most-once: never a second run.
            try await record(.missed(reportedBy: holder), of: tick, into: &report)
            return
        }
        let round = CronRound(name: name, tick: tick, token: token, reason: reason)
        let outcome: CronOutcome
        do {
            try await runWithTimeout { try await job(round) }
            outcome = .ran(holder: holder, token: token)
        } catch {
            // The lease ended (or the job is stopped): nothing is recorded; the next holder takes it from here.
            if Task.isCancelled { throw CancellationError() }
            outcome = .failed(holder: holder, token: token)
        }
        try await record(outcome, of: tick, into: &report)
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
        let name = schedule.roundName(of: tick)
        do {
            try await store.complete(
                system: key, round: name, by: .anonymous(outcome.record), retention: retention)
            report.outcomes.append((name, outcome))
        } catch let error as BatonError where error.code == .alreadyCompleted {
            // Recorded by another pass already (a host that held the lease before): nothing to add.
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    var seconds: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
