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
        let leaderStore = try PostgresLeaseStore(url: url, configuration: .init(maximumConnections: 2))
        let proxied = try StoreURL("postgres://postgres@127.0.0.1:\(proxy.port)/postgres")
        let waitingStore = try PostgresLeaseStore(url: proxied, configuration: .init(maximumConnections: 4))
        let failure = try await SilentConnectionScenario.check(
            leaderStore: LeaseStore(leaderStore), waitingStore: LeaseStore(waitingStore), proxy: proxy)
        #expect(failure == nil, "\(failure ?? "")")
    }

    @Test("the listener checks its connection every keepAlive and replaces it after keepAliveTimeout, on its clock")
    func listenerKeepAliveOnTheStoresClock() async throws {
        guard let url = try TestServer.url(), let host = url.hosts.first, let port = host.port else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        let clock = ManualClock()
        // Without TLS, whose shutdown would wait for the silent peer's close_notify before the socket closes.
        let driver = try PostgresLeaseStore(
            url: try StoreURL("postgres://postgres@127.0.0.1:\(proxy.port)/postgres?sslmode=disable"),
            configuration: .init(maximumConnections: 1),
            clock: clock
        )
        try await using(driver) { store in
            // A subscription starts the listener; ended at once, it leaves no feed that would read the store
            // (over the pool's connection, which goes silent too) when the listener wakes every feed.
            let feed = ChangeRecorder(try store.changes(key: unique("keepalive")))
            try #require(try await feed.wait { !$0.isEmpty }, "the first observation")
            feed.cancel()
            try await waitUntil("the feed ended") { feed.finished }
            _ = try await store.current(key: unique("keepalive"))
            // The pool's connection and the listening connection; the listener waits for its next check.
            try await waitUntil("two proxied connections, the listener waiting for its check") {
                proxy.openConnections == 2 && clock.nextDeadline == clock.now + .seconds(1)
            }
            #expect(proxy.blackholeOpenConnections() == 2)

            clock.advance(by: .seconds(1))
            // The check is sent and waits for its answer for keepAliveTimeout: the connection stays until then.
            try await waitUntil("the check waiting for its answer") { clock.nextDeadline == clock.now + .seconds(1) }
            #expect(proxy.openConnections == 2)
            clock.advance(by: .seconds(1))
            try await waitUntil("the silent listening connection closed") { proxy.openConnections == 1 }

            // The listener connects again after its backoff.
            try await waitUntil("the listener's backoff") {
                clock.nextDeadline == clock.now + .milliseconds(100)
            }
            #expect(proxy.openConnections == 1)
            clock.advance(by: .milliseconds(100))
            try await waitUntil("a new listening connection") { proxy.openConnections == 2 }
        }
    }
}
