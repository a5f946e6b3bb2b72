import Baton
import BatonTestKit
import Testing

/// A semaphore of 3 with 8 candidates on two store instances (two processes) on one PostgreSQL server.
@Suite struct PostgresSemaphoreTests {
    @Test func neverMoreHoldersThanPermits() async throws {
        guard let first = try TestServer.store(), let second = try TestServer.store() else { return }
        try await usingAll([LeaseStore(first), LeaseStore(second)]) { stores in
            let most = try await SemaphoreScenario.run(
                stores: stores, permits: 3, candidates: 8, work: .milliseconds(200))
            #expect(most == 3)
        }
    }
}
