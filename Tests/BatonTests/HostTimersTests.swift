import BatonTestKit
import Synchronization
import Testing

@_spi(BatonStoreKit) @testable import Baton

/// The one task that serves the electors' timers on the host's clock: timers run in deadline order, never early,
/// and a timer set earlier than the one slept for is not held up by it.
@Suite struct HostTimersTests {
    /// What ran, and when, on the continuous clock.
    final class Runs: Sendable {
        let runs = Mutex<[(name: String, at: ContinuousClock.Instant)]>([])

        func action(_ name: String) -> @Sendable () -> Void {
            { self.runs.withLock { $0.append((name, ContinuousClock.now)) } }
        }

        var names: [String] { runs.withLock { $0.map(\.name) } }
        func time(of name: String) -> ContinuousClock.Instant? { runs.withLock { $0.first { $0.name == name }?.at } }
    }

    @Test func timersRunInDeadlineOrderAndNeverEarly() async throws {
        let timers = HostTimers()
        let runs = Runs()
        let start = ContinuousClock.now
        let deadlines = [("c", 60), ("a", 20), ("b", 40)].map { ($0.0, start + .milliseconds($0.1)) }
        for (name, deadline) in deadlines { timers.schedule(at: deadline, runs.action(name)) }
        #expect(try await eventually { runs.names.count == 3 })
        #expect(runs.names == ["a", "b", "c"])
        for (name, deadline) in deadlines {
            let ran = try #require(runs.time(of: name))
            #expect(ran >= deadline, "\(name) ran before its deadline")
        }
        #expect(timers.count == 0)
    }

    @Test func aTimerSetEarlierThanTheOneSleptForRunsFirst() async throws {
        let timers = HostTimers()
        let runs = Runs()
        let late = ContinuousClock.now + .seconds(30)
        timers.schedule(at: late, runs.action("late"))
        let early = ContinuousClock.now + .milliseconds(20)
        timers.schedule(at: early, runs.action("early"))
        #expect(try await eventually { runs.names == ["early"] })
        #expect(try #require(runs.time(of: "early")) >= early)
        #expect(timers.count == 1, "the later timer still waits")
    }

    @Test func aCancelledTimerDoesNotRun() async throws {
        let timers = HostTimers()
        let runs = Runs()
        let start = ContinuousClock.now
        let cancelled = timers.schedule(at: start + .milliseconds(10), runs.action("cancelled"))
        timers.schedule(at: start + .milliseconds(30), runs.action("kept"))
        timers.cancel(cancelled)
        #expect(try await eventually { runs.names == ["kept"] })
        #expect(timers.count == 0)
    }

    @Test func timersSetAfterTheServingTaskEndedStillRun() async throws {
        let timers = HostTimers()
        let runs = Runs()
        timers.schedule(at: ContinuousClock.now + .milliseconds(5), runs.action("first"))
        #expect(try await eventually { runs.names == ["first"] })
        timers.schedule(at: ContinuousClock.now + .milliseconds(5), runs.action("second"))
        #expect(try await eventually { runs.names == ["first", "second"] })
    }
}
