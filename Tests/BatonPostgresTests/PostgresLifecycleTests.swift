import Baton
import BatonPostgres
import BatonTestKit
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// What runs where: nothing before `run()`, everything closed after it, and requests that end when cancelled.
@Suite struct PostgresLifecycleTests {
    @Test func aRequestBeforeRunFailsWithStoreUnavailableNamingRun() async throws {
        guard let driver = try TestServer.store() else { return }
        let clock = ManualClock()
        let store = LeaseStore(driver, clock: clock)
        let request = Task { await batonError { _ = try await store.current(key: unique("early")) } }
        // The front waits for run() to begin for its start timeout, on its clock.
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: LeaseStore.Configuration().startTimeout)
        let error = try #require(await request.value)
        #expect(error.code == .storeUnavailable)
        #expect(error.message.contains("run()"), "\(error.message)")
    }

    @Test func aRequestMadeWhileRunStartsWaitsUntilTheStoreIsReady() async throws {
        guard let driver = try TestServer.store() else { return }
        let key = unique("starting")
        let early = Task { try await driver.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil) }
        try await using(driver) { store in
            let lease = try #require(try await early.value.lease)
            #expect(try await store.current(key: key)?.holder == "a")
            try await store.release(lease)
        }
    }

    @Test func stoppingRunClosesEveryConnectionAndEndsTheFeeds() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-stop")
        // A pool (one connection in all is PostgresOneConnectionTests').
        let driver = try PostgresLeaseStore(url: try StoreURL("\(url)?application_name=\(name)&pool_max_conns=2"))
        let store = LeaseStore(driver)
        let key = unique("stop")
        let feed = try await store.withRunning { store in
            let feed = ChangeRecorder(try store.changes(key: key))
            try #require(try await feed.wait { !$0.isEmpty }, "the first observation")
            // The pool's connection and the listening connection.
            try await waitUntil("two sessions") { try await TestServer.sessions(named: name, url: url).count >= 2 }
            return feed
        }
        defer { feed.cancel() }
        try await waitUntil("the feed ended") { feed.finished }
        #expect((feed.error as? BatonError)?.code == .storeUnavailable, "\(String(describing: feed.error))")
        try await waitUntil("every session closed") { try await TestServer.sessions(named: name, url: url).count == 0 }
        #expect(await batonErrorCode { _ = try await store.current(key: key) } == .storeUnavailable)
        #expect(await batonErrorCode { _ = try await driver.current(key: key) } == .storeUnavailable)
        #expect(await batonErrorCode { _ = try driver.changes(key: key) } == .storeUnavailable)
        #expect(await batonErrorCode { try await driver.run() } == .invalidArgument)
    }

    @Test("pool_min_conns: the pool opens that many connections when the store starts and keeps them, idle")
    func aPoolKeepsItsMinimumOpen() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-min")
        let driver = try PostgresLeaseStore(
            url: try StoreURL("\(url)?application_name=\(name)&pool_max_conns=4&pool_min_conns=3"))
        try await using(driver) { store in
            // Three of the pool's, opened with no request made, and the listening one once a feed asks.
            try await waitUntil("three pool sessions") {
                try await TestServer.sessions(named: name, url: url).count >= 3
            }
            let key = unique("min")
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(30)).lease)
            try await store.release(lease)
            #expect(try await TestServer.sessions(named: name, url: url).count <= 5)
        }
        try await waitUntil("every session closed") { try await TestServer.sessions(named: name, url: url).count == 0 }
    }

    @Test func aGracefulShutdownStopsTheStore() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-shutdown")
        let store = LeaseStore(try PostgresLeaseStore(url: try StoreURL("\(url)?application_name=\(name)")))
        let group = ServiceGroup(services: [store], logger: Logger(label: "baton.tests"))
        let running = Task { try await group.run() }
        let key = unique("shutdown")
        let feed = ChangeRecorder(try store.changes(key: key))
        defer { feed.cancel() }
        try #require(try await feed.wait { !$0.isEmpty }, "the first observation")
        await group.triggerGracefulShutdown()
        try await running.value
        try await waitUntil("the feed ended") { feed.finished }
        try await waitUntil("every session closed") { try await TestServer.sessions(named: name, url: url).count == 0 }
        #expect(await batonErrorCode { _ = try await store.current(key: key) } == .storeUnavailable)
    }

    /// A request whose connection died silently ends when the front's deadline cancels it (the pool here has
    /// only one connection). Without TLS: closing a TLS connection waits for the peer's close_notify, which a
    /// silent peer never sends.
    @Test func aRequestOnASilentConnectionEndsAtTheDeadline() async throws {
        guard let url = try TestServer.url(), let host = url.hosts.first, let port = host.port else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        let driver = try PostgresLeaseStore(
            url: try StoreURL("postgres://postgres@127.0.0.1:\(proxy.port)/postgres?sslmode=disable"),
            configuration: .init(maximumConnections: 1)
        )
        let clock = ManualClock()
        let store = LeaseStore(driver, clock: clock)
        try await store.withRunning { store in
            let key = unique("silent")
            _ = try await store.current(key: key)
            #expect(proxy.blackholeOpenConnections() >= 1)
            let stalled = Outcome<BatonError.Code?>()
            Task { stalled.set(await batonErrorCode { _ = try await store.current(key: key) }) }
            await clock.waitForSleepers(atLeast: 1)
            clock.advance(by: LeaseStore.Configuration().requestTimeout)
            try await waitUntil("the stalled request ended") { stalled.value != nil }
            #expect(stalled.value.flatMap { $0 } == .timeout)
        }
    }
}

/// A value a task sets once, for a test to wait for without waiting on the task itself.
final class Outcome<Value: Sendable>: Sendable {
    private let state = Mutex<Value?>(nil)

    /// The value, once set.
    var value: Value? { state.withLock { $0 } }

    func set(_ value: Value) { state.withLock { $0 = value } }
}
