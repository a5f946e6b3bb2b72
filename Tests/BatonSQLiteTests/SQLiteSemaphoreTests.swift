import Baton
import BatonTestKit
import Testing

/// A semaphore of 3 with 8 candidates on two store instances on one file (two processes).
@Suite struct SQLiteSemaphoreTests {
    @Test func neverMoreHoldersThanPermits() async throws {
        try await withTwoStores { first, second in
            let most = try await SemaphoreScenario.run(
                stores: [first, second], permits: 3, candidates: 8, work: .milliseconds(200))
            #expect(most == 3)
        }
    }
}
