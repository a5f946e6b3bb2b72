import Baton
import BatonS3
import BatonTestKit
import Testing

/// Quorum mode on S3: a leader steps down when the other member leaves, and leads again when it comes back.
@Suite struct S3QuorumTests {
    @Test func leaderStepsDownWithoutAQuorum() async throws {
        guard let first = try S3TestServer.store(), let second = try S3TestServer.store() else { return }
        try await withRunning([first, second]) { stores in
            await #expect(throws: Never.self) {
                try await QuorumScenario.run(first: stores[0], second: stores[1])
            }
        }
    }
}
