import Baton
import BatonTestKit
import Testing

/// A semaphore of 3 with 8 candidates on two store instances (two processes) on one Redis server.
@Suite struct RedisSemaphoreTests {
    @Test func neverMoreHoldersThanPermits() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { first, _ in
            try await withRedisStore(url) { second, _ in
                let most = try await SemaphoreScenario.run(
                    stores: [first, second], permits: 3, candidates: 8, work: .milliseconds(200))
                #expect(most == 3)
            }
        }
    }
}
