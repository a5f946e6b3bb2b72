import Baton
import BatonTestKit
import Testing

/// Sharded leadership: 3, then 4, then 3 members of 12 shards on two store instances (two processes)
/// on one file.
@Suite struct SQLiteShardTests {
    @Test func joinAndLeave() async throws {
        try await withTwoStores { first, second in
            try await ShardScenario.run(stores: [first, second], shards: 12)
        }
    }
}
