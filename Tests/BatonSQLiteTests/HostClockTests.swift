import Testing

@testable import BatonSQLite

@Suite struct HostClockTests {
    @Test func readsTheBootClockUnderTheBootID() throws {
        let clock = HostClock()
        let bootID = try #require(HostClock.bootID())
        #expect(clock.epoch() == bootID)
        let before = HostClock.bootNanoseconds()
        let reading = clock.nanoseconds(at: clock.now)
        #expect(reading >= before && reading <= HostClock.bootNanoseconds())
    }

    @Test func sleepsUntilItsOwnDeadline() async throws {
        let clock = HostClock()
        let deadline = clock.now.advanced(by: .milliseconds(20))
        try await clock.sleep(until: deadline)
        #expect(clock.now >= deadline)
        #expect(deadline.duration(to: deadline.advanced(by: .seconds(2))) == .seconds(2))
    }

    @Test func sleepIsCancellable() async throws {
        let clock = HostClock()
        let sleeper = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(3600))) }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }
}
