import BatonTestKit
import Synchronization
import Testing

@_spi(BatonStoreKit) @testable import Baton

/// The shared watcher of the front's request deadlines, run on a manual clock.
@Suite struct RequestDeadlinesTests {
    private final class Fired: Sendable {
        let names = Mutex<[String]>([])
        func record(_ name: String) -> @Sendable () -> Void { { self.names.withLock { $0.append(name) } } }
        var value: [String] { names.withLock { $0 } }
    }

    @Test func oneWatcherRunsTheDueActionsInOrderAndNeverTheDroppedOnes() async throws {
        let clock = ManualClock()
        let deadlines = RequestDeadlines(clock: BatonClock(clock), timeout: .seconds(10), shared: true)
        let fired = Fired()
        _ = deadlines.set(fired.record("a"))
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(1))
        let dropped = deadlines.set(fired.record("b"))
        _ = deadlines.set(fired.record("c"))
        deadlines.drop(dropped)
        // One sleeper for three deadlines.
        #expect(clock.sleeperCount == 1)
        #expect(deadlines.count == 2)
        clock.advance(by: .seconds(9))
        #expect(try await eventually { fired.value == ["a"] }, "a's deadline ran")
        // The watcher goes on to c's deadline, a second later; b's never runs.
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(1))
        #expect(try await eventually { fired.value == ["a", "c"] }, "c's deadline ran")
        #expect(deadlines.count == 0)
    }

    @Test func theWatcherEndsWhenNothingIsLeftAndANewDeadlineStartsAnother() async throws {
        let clock = ManualClock()
        let deadlines = RequestDeadlines(clock: BatonClock(clock), timeout: .seconds(5), shared: true)
        let fired = Fired()
        let early = deadlines.set(fired.record("early"))
        await clock.waitForSleepers(atLeast: 1)
        deadlines.drop(early)
        // The watcher wakes at the dropped deadline, finds nothing and ends.
        clock.advance(by: .seconds(5))
        #expect(try await eventually { clock.sleeperCount == 0 }, "the watcher ended")
        _ = deadlines.set(fired.record("late"))
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(4))
        #expect(fired.value == [])
        clock.advance(by: .seconds(1))
        #expect(try await eventually { fired.value == ["late"] }, "the new deadline ran")
    }

    @Test func onAManualClockEachDeadlineSleepsOnItsOwn() async throws {
        let clock = ManualClock()
        let deadlines = RequestDeadlines(clock: BatonClock(clock), timeout: .seconds(3))
        let fired = Fired()
        _ = deadlines.set(fired.record("a"))
        let dropped = deadlines.set(fired.record("b"))
        await clock.waitForSleepers(atLeast: 2)
        deadlines.drop(dropped)
        clock.advance(by: .seconds(3))
        #expect(try await eventually { fired.value == ["a"] }, "a's deadline ran")
        #expect(fired.value == ["a"])
    }
}
