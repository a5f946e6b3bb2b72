import Baton
import BatonEtcd
import BatonTestKit
import Testing

/// A waiting candidate's connection dies silently (blackholed: no reset, no answer) while the leader crashes: the
/// channel's HTTP/2 keep-alive pings notice, the channel reconnects, and the candidate leads.
@Suite("etcd silent connections")
struct EtcdSilentConnectionTests {
    @Test("a waiting candidate whose connection was blackholed takes over from a crashed leader within 3 ttl")
    func blackholedWaiterTakesOver() async throws {
        guard let url = EtcdTestServer.value(), let host = try StoreURL(url).hosts.first, let port = host.port else {
            return
        }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        let leaderStore = try EtcdLeaseStore(url)
        let waitingStore = try EtcdLeaseStore("etcd://127.0.0.1:\(proxy.port)")
        let ttl = Duration.seconds(2)
        let outcome = try await SilentConnectionScenario.run(
            leaderStore: leaderStore,
            waitingStore: waitingStore,
            proxy: proxy,
            ttl: ttl,
            limit: ttl * 3
        )
        #expect(outcome.blackholed > 0)
        let takeover = outcome.takeover.map { "after \($0)" } ?? "none"
        print("silent connections: \(outcome.blackholed) blackholed; takeover \(takeover)")
        #expect(outcome.takeover != nil, "no takeover within \(ttl * 3) of the leader's crash")
        try await waitingStore.close()
        try await leaderStore.close()
    }
}
