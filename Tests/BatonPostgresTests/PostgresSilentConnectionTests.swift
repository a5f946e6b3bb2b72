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

    @Test("a request after one cancelled on a silent connection gets a new connection, with TLS too")
    func requestAfterASilentConnectionWasClosed() async throws {
        guard let url = try TestServer.url(), let host = url.hosts.first, let port = host.port else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        // One connection and TLS (the test server offers it): the connection the cancelled request closes goes
        // on looking open to the pool until its TLS shutdown ends, which the silent peer never answers.
        let driver = try PostgresLeaseStore(
            url: try StoreURL("postgres://postgres@127.0.0.1:\(proxy.port)/postgres?sslmode=require"),
            configuration: .init(maximumConnections: 1)
        )
        let store = LeaseStore(driver, configuration: .init(requestTimeout: .seconds(2)))
        try await store.withRunning { store in
            let key = unique("silent-pool")
            // The first answer may wait for the schema's setup, which other tests' stores share.
            let answered = try await eventually(timeout: .seconds(30)) {
                do {
                    _ = try await store.current(key: key)
                    return true
                } catch {
                    return false
                }
            }
            try #require(answered, "the store never answered")
            #expect(proxy.blackholeOpenConnections() >= 1)
            // Unanswered: the deadline cancels it, which closes its connection.
            await #expect(throws: BatonError.self) { try await store.current(key: key) }
            // The next request must not be lent the closing connection again and again until it gives up.
            let acquired = try await store.acquire(key: key, holder: "next", ttl: .seconds(5), metadata: nil)
            #expect(acquired.lease != nil, "\(acquired)")
        }
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
            // A subscription starts the listener; ended at once, it leaves no feed that would read the store when
            // the listener wakes every feed (such a read would sleep on the store's clock too).
            let feed = ChangeRecorder(try store.changes(key: unique("keepalive")))
            try #require(try await feed.wait { !$0.isEmpty }, "the first observation")
            feed.cancel()
            try #require(try await feed.waitForEnd(), "the feed ended")
            // The listener listens, and waits for its next check: the only sleeper on the store's clock.
            try await waitUntil("the listener waiting for its check") {
                clock.sleeperCount == 1 && clock.nextDeadline == clock.now + .seconds(1)
            }
            #expect(proxy.blackholeOpenConnections() >= 1)
            let connectionsBefore = proxy.forwardedConnections

            clock.advance(by: .seconds(1))
            // The check is sent and waits for its answer for keepAliveTimeout: the listener keeps its connection.
            try await waitUntil("the check waiting for its answer") {
                clock.sleeperCount == 1 && clock.nextDeadline == clock.now + .seconds(1)
            }
            clock.advance(by: .seconds(1))
            // No answer within keepAliveTimeout: the listener closes the connection and waits out its backoff.
            try await waitUntil("the listener's backoff") {
                clock.sleeperCount == 1 && clock.nextDeadline == clock.now + .milliseconds(100)
            }
            #expect(proxy.forwardedConnections == connectionsBefore, "the listener connected before its backoff")
            clock.advance(by: .milliseconds(100))
            try await waitUntil("a new listening connection") { proxy.forwardedConnections > connectionsBefore }
        }
    }
}
