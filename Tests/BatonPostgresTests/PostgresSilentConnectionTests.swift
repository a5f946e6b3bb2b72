import Baton
import BatonPostgres
import BatonTestKit
import Testing

/// A waiting candidate's connections die silently (blackholed: no reset, no answer) while the leader crashes:
/// the candidate's listener probe and expiry timer notice, and it leads.
@Suite("PostgreSQL silent connections")
struct PostgresSilentConnectionTests {
    @Test("a waiting candidate whose connections were blackholed takes over from a crashed leader within 3 ttl")
    func blackholedWaiterTakesOver() async throws {
        guard let url = try TestServer.url(), let host = url.hosts.first, let port = host.port else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        let leaderStore = try await PostgresLeaseStore(url: url, configuration: .init(maximumConnections: 2))
        let proxied = try StoreURL("postgres://postgres@127.0.0.1:\(proxy.port)/postgres")
        let waitingStore = try await PostgresLeaseStore(url: proxied, configuration: .init(maximumConnections: 4))
        let failure = try await SilentConnectionScenario.check(
            leaderStore: LeaseStore(leaderStore), waitingStore: LeaseStore(waitingStore), proxy: proxy)
        #expect(failure == nil, "\(failure ?? "")")
    }
}
