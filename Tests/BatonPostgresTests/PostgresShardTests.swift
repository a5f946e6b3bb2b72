import Baton
import BatonTestKit
import Testing

/// Sharded leadership: 3, then 4, then 3 members of 12 shards on two store instances (two processes)
/// on one PostgreSQL server.
@Suite struct PostgresShardTests {
    @Test func joinAndLeave() async throws {
        guard let first = try TestServer.store(), let second = try TestServer.store() else { return }
        try await usingAll([LeaseStore(first), LeaseStore(second)]) { stores in
            try await ShardScenario.run(stores: stores, shards: 12)
        }
    }
}
