import Baton
import BatonRedis
import BatonTestKit
import Testing

/// A waiting candidate's connections die silently (blackholed: no reset, no answer) while the leader crashes:
/// the candidate notices through its probes and its expiry timer, with keyspace notifications on, and leads.
@Suite("Redis silent connections")
struct RedisSilentConnectionTests {
    @Test("a waiting candidate whose connections were blackholed takes over from a crashed leader within 3 ttl")
    func blackholedWaiterTakesOver() async throws {
        guard let url = try RedisTestServer.url(), let port = RedisTestServer.port(of: url) else { return }
        let proxy = try BlackholeProxy(forwardingTo: "127.0.0.1", port: port)
        defer { proxy.close() }
        let leaderStore = LeaseStore(try RedisLeaseStore(url))
        let waitingStore = LeaseStore(try RedisLeaseStore("redis://127.0.0.1:\(proxy.port)"))
        let failure = try await SilentConnectionScenario.check(
            leaderStore: leaderStore, waitingStore: waitingStore, proxy: proxy)
        #expect(failure == nil, "\(failure ?? "")")
    }
}
