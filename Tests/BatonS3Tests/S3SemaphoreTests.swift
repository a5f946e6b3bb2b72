import Baton
import BatonS3
import BatonTestKit
import Testing

/// A semaphore of 3 with 8 candidates on two store instances (two processes) on one S3 server.
@Suite struct S3SemaphoreTests {
    @Test func neverMoreHoldersThanPermits() async throws {
        guard let first = try S3TestServer.store(), let second = try S3TestServer.store() else { return }
        try await withRunning([first, second]) { stores in
            // S3 has no push: a freed slot is found at the next poll, so the slots are not always all in use.
            try await SemaphoreScenario.run(
                stores: stores, permits: 3, candidates: 8, work: .milliseconds(200))
        }
    }
}
