import Baton
import BatonS3
import BatonTestKit
import Testing

/// Sharded leadership: 3, then 4, then 3 members of 12 shards on two store instances (two processes)
/// on one S3 server.
@Suite struct S3ShardTests {
    @Test func joinAndLeave() async throws {
        guard let first = try S3TestServer.store(), let second = try S3TestServer.store() else { return }
        try await withRunning([first, second]) { stores in
            try await ShardScenario.run(stores: stores, shards: 12)
        }
    }
}
