import Baton
import BatonTestKit
import Testing

/// Sharded leadership: 3, then 4, then 3 members of 12 shards on two store instances (two processes)
/// on one Redis server.
@Suite struct RedisShardTests {
    @Test func joinAndLeave() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { first, _ in
            try await withRedisStore(url) { second, _ in
                try await ShardScenario.run(stores: [first, second], shards: 12)
            }
        }
    }
}
