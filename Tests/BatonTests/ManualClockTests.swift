@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Testing

@Suite("ManualClock")
struct ManualClockTests {
    typealias Instant = ManualClock.Instant

    @Test func timeStandsStillUntilAdvanced() {
        let clock = ManualClock()
        #expect(clock.now == .zero)
        #expect(clock.now == clock.now)
        clock.advance(by: .seconds(3))
        #expect(clock.now == Instant(offset: .seconds(3)))
        clock.advance(to: Instant(offset: .seconds(10)))
        #expect(clock.now.offset == .seconds(10))
    }

    @Test func timeNeverGoesBack() {
        let clock = ManualClock(now: Instant(offset: .seconds(5)))
        #expect(clock.now.offset == .seconds(5))
        clock.advance(to: Instant(offset: .seconds(1)))
        #expect(clock.now.offset == .seconds(5))
        clock.advance(by: .seconds(-2))
        #expect(clock.now.offset == .seconds(5))
    }

    @Test func instantArithmetic() {
        let start = Instant(offset: .milliseconds(1500))
        let later = start.advanced(by: .milliseconds(500))
        #expect(later.offset == .seconds(2))
        #expect(start.duration(to: later) == .milliseconds(500))
        #expect(later.duration(to: start) == .milliseconds(-500))
        #expect(start < later)
        #expect(start + .milliseconds(500) == later)
        #expect(later - start == .milliseconds(500))
        #expect(later - .milliseconds(500) == start)
        var moving = start
        moving += .seconds(1)
        moving -= .milliseconds(250)
        #expect(moving.offset == .milliseconds(2250))
        #expect(ManualClock().minimumResolution == .nanoseconds(1))
    }

    @Test func sleepingPastOrPresentDeadlineReturnsAtOnce() async throws {
        let clock = ManualClock(now: Instant(offset: .seconds(7)))
        try await clock.sleep(until: Instant(offset: .seconds(3)), tolerance: nil)
        try await clock.sleep(until: clock.now, tolerance: nil)
        try await clock.sleep(for: .zero)
        #expect(clock.sleeperCount == 0)
        #expect(clock.now.offset == .seconds(7))
    }

    @Test func sleeperWakesOnlyWhenItsDeadlineIsReached() async throws {
        let clock = ManualClock()
        let sleeper = Task {
            try await clock.sleep(until: Instant(offset: .seconds(5)), tolerance: nil)
            return clock.now
        }
        await clock.waitForSleepers(atLeast: 1)
        #expect(clock.sleeperCount == 1)
        #expect(clock.nextDeadline == Instant(offset: .seconds(5)))
        #expect(clock.advance(by: .seconds(4)) == 0)
        #expect(clock.sleeperCount == 1)
        #expect(clock.advance(by: .seconds(1)) == 1)
        #expect(clock.sleeperCount == 0)
        #expect(clock.nextDeadline == nil)
        let wokeAt = try await sleeper.value
        #expect(wokeAt == Instant(offset: .seconds(5)))
    }

    @Test func advanceWakesExactlyTheDueSleepers() async throws {
        let clock = ManualClock()
        let sleepers = [3, 1, 2].map { seconds in
            Task { try await clock.sleep(until: Instant(offset: .seconds(seconds)), tolerance: nil) }
        }
        await clock.waitForSleepers(atLeast: 3)
        #expect(clock.nextDeadline == Instant(offset: .seconds(1)))
        #expect(clock.advance(to: Instant(offset: .seconds(2))) == 2)
        #expect(clock.sleeperCount == 1)
        #expect(clock.nextDeadline == Instant(offset: .seconds(3)))
        try await sleepers[1].value
        try await sleepers[2].value
        #expect(clock.advance(by: .seconds(10)) == 1)
        try await sleepers[0].value
        #expect(clock.sleeperCount == 0)
    }

    @Test func taskSleepWithTheClockUsesManualTime() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await Task.sleep(for: .seconds(60), clock: clock) }
        await clock.waitForSleepers(atLeast: 1)
        #expect(clock.nextDeadline == Instant(offset: .seconds(60)))
        clock.advance(by: .seconds(60))
        try await sleeper.value
    }

    @Test func cancellingASleeperThrowsAndRemovesIt() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(until: Instant(offset: .seconds(3600)), tolerance: nil) }
        await clock.waitForSleepers(atLeast: 1)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleeperCount == 0)
        #expect(clock.nextDeadline == nil)
        #expect(clock.now == .zero)
    }

    @Test func aCancelledTaskDoesNotSleep() async throws {
        let clock = ManualClock()
        let sleeper = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(until: Instant(offset: .seconds(1)), tolerance: nil)
        }
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test func waitForSleepersReturnsAtOnceWhenEnoughSleep() async {
        let clock = ManualClock()
        await clock.waitForSleepers(atLeast: 0)
        #expect(clock.sleeperCount == 0)
    }

    @Test func waitForSleepersSuspendsUntilEnoughTasksSleep() async throws {
        let clock = ManualClock()
        let watcher = Task {
            await clock.waitForSleepers(atLeast: 2)
            return clock.sleeperCount
        }
        let first = Task { try await clock.sleep(until: Instant(offset: .seconds(1)), tolerance: nil) }
        let second = Task { try await clock.sleep(until: Instant(offset: .seconds(2)), tolerance: nil) }
        let seen = await watcher.value
        #expect(seen >= 2)
        clock.advance(by: .seconds(2))
        try await first.value
        try await second.value
    }

    @Test func waitForSleepersReturnsWhenCancelled() async {
        let clock = ManualClock()
        let watcher = Task {
            await clock.waitForSleepers(atLeast: 1)
            return Task.isCancelled
        }
        watcher.cancel()
        #expect(await watcher.value)
        #expect(clock.sleeperCount == 0)
    }

    @Test func batonClockOverAManualClock() async throws {
        let clock = ManualClock(now: Instant(offset: .seconds(100)))
        let baton = BatonClock(clock)
        #expect(baton.now() == .zero)
        clock.advance(by: .milliseconds(250))
        #expect(baton.now() == .milliseconds(250))
        let sleeper = Task { try await baton.sleep(for: .seconds(1)) }
        await clock.waitForSleepers(atLeast: 1)
        #expect(clock.nextDeadline == Instant(offset: .milliseconds(101_250)))
        clock.advance(by: .seconds(1))
        try await sleeper.value
    }

    @Test func drivesMemoryStoreExpiry() async throws {
        let clock = ManualClock()
        let store = MemoryLeaseStore(clock: clock)
        let result = try await store.acquire(key: "job", holder: "a", ttl: .seconds(10), metadata: nil)
        let lease = try #require(result.lease)
        clock.advance(by: .milliseconds(9_999))
        #expect(try await store.current(key: "job")?.remaining == .milliseconds(1))
        clock.advance(by: .milliseconds(1))
        #expect(try await store.current(key: "job") == nil)
        let next = try await store.acquire(key: "job", holder: "b", ttl: .seconds(10), metadata: nil)
        #expect((next.lease?.token ?? 0) > lease.token)
    }
}
