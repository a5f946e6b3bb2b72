import BatonTestKit
import Foundation
import Synchronization
import Testing

@testable import Baton

/// ``ScheduledJob/run(_:)`` end to end on real clocks: two hosts of an every-second job (six fields) on one store.
@Suite("Scheduled job")
struct ScheduledJobTests {
    final class Runs: Sendable {
        let runs = Mutex<[(round: String, holder: String, token: FencingToken)]>([])
        func add(_ round: CronRound, _ holder: String) {
            runs.withLock { $0.append((round.name, holder, round.token)) }
        }
        var all: [(round: String, holder: String, token: FencingToken)] { runs.withLock { $0 } }
        private let failure = Mutex(true)
        /// True the first time only: that run fails.
        func takeFailure() -> Bool {
            failure.withLock { first in
                defer { first = false }
                return first
            }
        }
    }

    @Test("two hosts run each tick once, recorded, with rising tokens; a failing run is recorded as failed")
    func twoHosts() async throws {
        let store = LeaseStore.memory()
        let schedule = try CronSchedule("* * * * * *")
        let runs = Runs()
        let jobs = try ["a", "b"].map { holder in
            try ScheduledJob(
                store: store, key: "every-second", holder: holder, schedule: schedule,
                policy: CronPolicy(lateness: .seconds(1), lookback: .seconds(60)),
                configuration: ElectorConfiguration(ttl: .seconds(2)))
        }
        let tasks = jobs.map { job in
            Task {
                try await job.run { round in
                    runs.add(round, job.holder)
                    if runs.takeFailure() {
                        struct Failure: Error {}
                        throw Failure()
                    }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(4_500))
        for task in tasks { task.cancel() }
        for task in tasks { _ = try? await task.value }

        let all = runs.all
        #expect(all.count >= 3, "runs: \(all)")
        #expect(Set(all.map(\.round)).count == all.count, "a tick ran twice: \(all)")
        #expect(all.map(\.token) == all.map(\.token).sorted())
        var failed = 0
        for run in all {
            let record = try #require(try await store.completion(system: "every-second", round: run.round))
            switch CronOutcome(record: record) {
            case .ran(let holder, let token)?:
                #expect(holder == run.holder && token == run.token)
            case .failed(let holder, _)?:
                #expect(holder == run.holder)
                failed += 1
            default:
                Issue.record("\(run.round): \(record)")
            }
        }
        #expect(failed == 1)
        let counted = jobs.map(\.statistics).reduce(0) { $0 + $1.ran + $1.failed }
        #expect(counted == all.count)
    }

    @Test("a policy whose values do not fit is refused")
    func badPolicy() throws {
        let schedule = try CronSchedule("@daily")
        for policy in [
            CronPolicy(catchUpWindow: .zero), CronPolicy(runTimeout: .seconds(-1)), CronPolicy(lateness: .zero),
            CronPolicy(lookback: .seconds(30 * 86_400)),
        ] {
            #expect(throws: BatonError.self) {
                try ScheduledJob(store: LeaseStore.memory(), key: "k", schedule: schedule, policy: policy)
            }
        }
    }
}
