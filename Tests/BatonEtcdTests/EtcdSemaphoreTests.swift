import Baton
import BatonEtcd
import BatonTestKit
import Testing

/// A semaphore of 3 with 8 candidates on two store instances (two processes) on one etcd server.
@Suite struct EtcdSemaphoreTests {
    @Test func neverMoreHoldersThanPermits() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let first = LeaseStore(try EtcdLeaseStore(url))
        let second = LeaseStore(try EtcdLeaseStore(url))
        try await first.withRunning { first in
            try await second.withRunning { second in
                let most = try await SemaphoreScenario.run(
                    stores: [first, second], permits: 3, candidates: 8, work: .milliseconds(200))
                #expect(most == 3)
            }
        }
    }
}
