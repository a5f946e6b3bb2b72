import BatonTestKit
import Foundation
import Synchronization
import Testing

@_spi(BatonStoreKit) @testable import Baton

/// 24 simulated hours of an every-minute job over 5 hosts whose clocks are up to 30 s off, on the manual clock:
/// every host outage, every winner that crashes in the middle of its run and every long run is injected, and the
/// rounds' records are checked against them. Each host makes its passes (``CronPass``, what ``ScheduledJob`` runs
/// under the job's lease) against one in-memory store whose leases expire on the manual clock.
@Suite("Distributed cron: a simulated day")
struct CronSimulationTests {
    static let start = Date(timeIntervalSince1970: 1_796_000_400)  // a whole minute
    static let offsets: [TimeInterval] = [-30, -11, 0, 13, 30]
    static let lateness: TimeInterval = 20
    static let ttl = Duration.seconds(30)

    /// Every host down from `from` to `until` (seconds after the start, true time).
    struct Outage {
        var from: TimeInterval
        var until: TimeInterval
    }

    static let outages = [
        Outage(from: 2 * 3600 + 17, until: 2 * 3600 + 17 * 60 + 41),  // 17 minutes
        Outage(from: 9 * 3600 + 5 * 60 + 3, until: 10 * 3600 + 29),  // 55 minutes
        Outage(from: 15 * 3600 + 44, until: 15 * 3600 + 3 * 60 + 52),  // 3 minutes
        Outage(from: 21 * 3600 + 30 * 60 + 5, until: 21 * 3600 + 32 * 60 + 19),  // 2 minutes
    ]
    /// Minutes (from the start) whose on-time winner crashes in the middle of its run.
    static let crashes: Set<Int> = [61, 250, 700, 701, 1000, 1333]
    /// Minutes whose run takes 150 s (two more ticks come due meanwhile).
    static let longRuns: Set<Int> = [400, 1100]

    final class Log: Sendable {
        struct State {
            /// Every start of the job: round, host, token.
            var runs: [(round: String, host: Int, token: FencingToken)] = []
        }
        let state = Mutex(State())
    }

    struct Crash: Error {}

    @Test(
        "every round runs once (again only after its winner died, with a larger token) or is reported missed",
        arguments: [
            CronPolicy(delivery: .atLeastOnce, overlap: .skip, catchUpWindow: .seconds(600), lateness: .seconds(20)),
            CronPolicy(delivery: .atMostOnce, overlap: .wait, lateness: .seconds(20)),
        ])
    func simulatedDay(policy: CronPolicy) async throws {
        let clock = ManualClock()
        let store = LeaseStore(MemoryLeaseStore(clock: clock), clock: clock)
        let schedule = try CronSchedule("* * * * *")
        let key = "nightly"
        let elapsed: @Sendable () -> TimeInterval = { clock.now.offset.seconds }
        let log = Log()
        struct Host {
            var up = true
            var watermark: Date?
            var restartAt: TimeInterval?
        }
        var hosts = Array(repeating: Host(), count: Self.offsets.count)
        // The hosts' missed-rounds counters, summed over their restarts (as a metrics backend would).
        var countedMissed = 0
        let passes = Self.offsets.indices.map { index in
            CronPass(
                store: store, key: key, holder: "host-\(index)", schedule: schedule, policy: policy,
                retention: .seconds(7 * 86_400), clock: BatonClock(clock),
                wallNow: { Self.start.addingTimeInterval(elapsed() + Self.offsets[index]) })
        }
        let day: TimeInterval = 86_400
        var second: TimeInterval = 0
        var outages = Self.outages[...]
        while second < day {
            while let outage = outages.first, outage.from <= second {
                outages.removeFirst()
                for index in hosts.indices {
                    hosts[index] = Host(up: false, restartAt: outage.until)
                }
            }
            for index in hosts.indices {
                if !hosts[index].up, let restart = hosts[index].restartAt, restart <= second {
                    hosts[index] = Host()  // a restarted process remembers nothing
                }
                guard hosts[index].up else { continue }
                let wall = passes[index].wallNow()
                if let seen = hosts[index].watermark, let next = schedule.nextTick(after: seen), next > wall {
                    continue
                }
                // Take the job's lease, or try again in a second.
                guard
                    let lease = try await store.acquire(key: key, holder: "host-\(index)", ttl: Self.ttl).lease
                else { continue }
                let job: @Sendable (CronRound) async throws -> Void = { round in
                    let minute = Int(round.tick.timeIntervalSince(Self.start) / 60)
                    log.state.withLock { $0.runs.append((round.name, index, round.token)) }
                    if Self.crashes.contains(minute) && round.reason == .onTime {
                        throw Crash()
                    }
                    if Self.longRuns.contains(minute) {
                        for _ in 0..<15 {
                            clock.advance(by: .seconds(10))
                            _ = try await store.renew(lease, ttl: Self.ttl)
                        }
                    }
                }
                // A crash in the job ends the pass unrecorded, the lease held until it expires.
                let pass = passes[index]
                let watermark = hosts[index].watermark
                let crashing = Task {
                    try await pass.handle(since: watermark, token: lease.token) { round in
                        do {
                            try await job(round)
                        } catch is Crash {
                            withUnsafeCurrentTask { $0?.cancel() }
                            throw CancellationError()
                        }
                    }
                }
                do {
                    let report = try await crashing.value
                    hosts[index].watermark = report.watermark
                    countedMissed +=
                        report.outcomes.filter { if case .missed = $0.outcome { true } else { false } }
                        .count
                    try await store.release(lease)
                } catch is CancellationError {
                    hosts[index] = Host(up: false, restartAt: second + 180)
                }
            }
            clock.advance(by: .seconds(1))
            second = elapsed()
        }

        // The rounds of the day, except the last few minutes (still being handled).
        let ticks = schedule.ticks(after: Self.start, through: Self.start.addingTimeInterval(day - 300))
        let runs = log.state.withLock { $0.runs }
        var missed = 0
        var missedTicks: Set<Int> = []
        for tick in ticks {
            let name = schedule.roundName(of: tick)
            let minute = Int(tick.timeIntervalSince(Self.start) / 60)
            let record = try #require(try await store.completion(system: key, round: name), "\(name) has no record")
            let outcome = try #require(CronOutcome(record: record), "\(name): \(record)")
            let attempts = runs.filter { $0.round == name }
            #expect(
                attempts.map(\.token) == attempts.map(\.token).sorted()
                    && Set(attempts.map(\.token)).count
                        == attempts.count,
                "\(name): tokens \(attempts.map(\.token))")
            let crashed = Self.crashes.contains(minute) && !attempts.isEmpty
            switch outcome {
            case .ran(_, let token), .failed(_, let token):
                #expect(attempts.last?.token == token, "\(name) recorded token \(token), ran \(attempts)")
                #expect(attempts.count == (crashed ? 2 : 1), "\(name) ran \(attempts.count) times: \(attempts)")
                #expect(policy.delivery == .atLeastOnce || attempts.count == 1)
            case .missed:
                missed += 1
                missedTicks.insert(minute)
                #expect(attempts.count <= 1)
                #expect(
                    inOutage(tick) || (crashed && policy.delivery == .atMostOnce),
                    "\(name) reported missed outside the injected outages and crashes")
            case .skipped:
                #expect(attempts.isEmpty)
                #expect(policy.overlap == .skip)
                #expect(Self.longRuns.contains(minute - 1) || Self.longRuns.contains(minute - 2), "\(name) skipped")
            }
        }
        // The missed rounds are the injected ones: every outage's rounds that no host could run on time, less
        // the one caught up after it; and under at-most-once, the crashed rounds.
        var expected = 0
        for outage in Self.outages {
            // Before the outage the host whose clock is furthest ahead has handled the rounds up to its time; after
            // it, the first host to come back (host 0) finds the rest, and the rounds within the lateness are on
            // time.
            let first = outage.from + Self.offsets.max()!
            let last = outage.until + Self.offsets[0] - Self.lateness
            let lost = ticks.filter {
                let at = $0.timeIntervalSince(Self.start)
                return at > first && at < last
            }.count
            let onTime = ticks.contains {
                let at = $0.timeIntervalSince(Self.start)
                return at >= last && at <= outage.until + Self.offsets[0]
            }
            expected += lost - (policy.catchUpWindow != nil && !onTime && lost > 0 ? 1 : 0)
        }
        if policy.delivery == .atMostOnce { expected += Self.crashes.count }
        #expect(missed == expected, "missed rounds: \(missedTicks.sorted())")
        #expect(countedMissed == expected, "the hosts counted \(countedMissed) missed rounds")
        #expect(expected > 0)
    }

    func inOutage(_ tick: Date) -> Bool {
        let at = tick.timeIntervalSince(Self.start)
        return Self.outages.contains { at > $0.from && at <= $0.until + Self.offsets.max()! }
    }
}
