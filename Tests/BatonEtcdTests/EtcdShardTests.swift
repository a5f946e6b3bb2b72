import Baton
import BatonEtcd
import BatonTestKit
import Testing

/// Sharded leadership: 3, then 4, then 3 members of 12 shards on two store instances (two processes)
/// on one etcd server.
@Suite struct EtcdShardTests {
    @Test func joinAndLeave() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let first = LeaseStore(try EtcdLeaseStore(url))
        let second = LeaseStore(try EtcdLeaseStore(url))
        try await first.withRunning { first in
            try await second.withRunning { second in
                try await ShardScenario.run(stores: [first, second], shards: 12)
            }
        }
    }
}
