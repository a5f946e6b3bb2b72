import BatonTestKit
import Foundation
import Synchronization
import Testing

@_spi(BatonStoreKit) @testable import Baton

/// One pass of a scheduled job at its edges, on the manual clock: a stop that comes as the job returns, and a round
/// begun before anything was recorded.
@Suite("Cron pass")
struct CronPassTests {
    /// A tick of the every-minute schedule below (a whole minute in UTC).
    static let tick = Date(timeIntervalSince1970: 1_800_000_000)
    static let key = "nightly"

    static func pass(
        _ store: LeaseStore, holder: String, clock: ManualClock, policy: CronPolicy = CronPolicy(), at wall: Date
    ) throws -> CronPass {
        CronPass(
            store: store, key: key, holder: holder, schedule: try CronSchedule("* * * * *"), policy: policy,
            retention: .seconds(86_400), clock: BatonClock(clock), wallNow: { wall })
    }

    final class Runs: Sendable {
        let reasons = Mutex<[CronRound.Reason]>([])
        func add(_ round: CronRound) { reasons.withLock { $0.append(round.reason) } }
        var all: [CronRound.Reason] { reasons.withLock { $0 } }
    }

    @Test("a job that returns as its host is stopped is recorded as run, and the next holder does not run it again")
    func stopAsTheJobReturns() async throws {
        let clock = ManualClock()
        let faults = FaultInjectingStore(wrapping: MemoryLeaseStore(clock: clock), clock: clock)
        let store = LeaseStore(faults, clock: clock)
        let wall = Self.tick.addingTimeInterval(5)
        let round = try CronSchedule("* * * * *").roundName(of: Self.tick)
        let first = try #require(try await store.acquire(key: Self.key, holder: "a", ttl: .seconds(10)).lease)
        // The completion hangs until the stop has come: it must not be given up with the stopped pass.
        faults.setFault(.hang, for: .operation(.complete))
        let pass = try Self.pass(store, holder: "a", clock: clock, at: wall)
        let stopped = Task {
            try await pass.handle(since: Self.tick.addingTimeInterval(-1), token: first.token) { _ in
                // The stop signal comes as the job returns (a command that has just exited 0).
                withUnsafeCurrentTask { $0?.cancel() }
            }
        }
        // Until the completion hangs, or the pass ends without it.
        let hanging = Task { await faults.waitForHangingCalls(atLeast: 1) }
        Task {
            _ = try? await stopped.value
            hanging.cancel()
        }
        await hanging.value
        faults.clearFaults()
        let report = try? await stopped.value
        #expect(report?.outcomes.map(\.round) == [round], "the stopped pass reports what it recorded")
        let record = try await store.completion(system: Self.key, round: round)
        #expect(
            record.flatMap(CronOutcome.init(record:)) == .ran(holder: "a", token: first.token), "\(record ?? "nil")")

        // The next holder of the job's lease finds the round recorded.
        try await store.release(first)
        let second = try #require(try await store.acquire(key: Self.key, holder: "b", ttl: .seconds(10)).lease)
        let runs = Runs()
        _ = try await Self.pass(store, holder: "b", clock: clock, at: wall)
            .handle(since: Self.tick.addingTimeInterval(-1), token: second.token) { runs.add($0) }
        #expect(runs.all.isEmpty, "the round ran again: \(runs.all)")
    }

    @Test(
        "a round begun, never completed and late, with nothing recorded before it, runs again (or is reported missed)",
        arguments: [CronPolicy.Delivery.atLeastOnce, .atMostOnce])
    func begunBeforeAnythingWasRecorded(delivery: CronPolicy.Delivery) async throws {
        let clock = ManualClock()
        let store = LeaseStore(MemoryLeaseStore(clock: clock), clock: clock)
        let round = try CronSchedule("* * * * *").roundName(of: Self.tick)
        // Its winner died as it started the job; the next host takes the lease after the round's lateness.
        _ = try await store.claim(system: Self.key, round: round, candidate: "dead", retention: .seconds(86_400))
        let lease = try #require(try await store.acquire(key: Self.key, holder: "b", ttl: .seconds(10)).lease)
        let policy = CronPolicy(delivery: delivery, lateness: .seconds(20))
        let runs = Runs()
        let report = try await Self.pass(
            store, holder: "b", clock: clock, policy: policy, at: Self.tick.addingTimeInterval(30)
        ).handle(since: nil, token: lease.token) { runs.add($0) }
        let record = try await store.completion(system: Self.key, round: round)
        switch delivery {
        case .atLeastOnce:
            #expect(runs.all == [.again])
            #expect(record.flatMap(CronOutcome.init(record:)) == .ran(holder: "b", token: lease.token))
        case .atMostOnce:
            #expect(runs.all.isEmpty)
            #expect(record.flatMap(CronOutcome.init(record:)) == .missed(reportedBy: "b"))
        }
        #expect(report.outcomes.map(\.round) == [round])
    }
}
