import Baton
import BatonTestKit
import Logging
import Synchronization
import Testing

@testable import BatonPostgres

/// A store with a pool of one (`pool_max_conns=1`) holds one server connection however many keys it leads, waits
/// for or watches: its requests run on the connection it listens on, one at a time.
@Suite struct PostgresOneConnectionTests {
    @Test func electorsLeadersAndWatchersShareOneConnection() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-one")
        let driver = try PostgresLeaseStore(url: try StoreURL("\(url)?application_name=\(name)&pool_max_conns=1"))
        guard let otherDriver = try TestServer.store() else { return }
        try await usingAll([LeaseStore(driver), LeaseStore(otherDriver)]) { stores in
            let (store, other) = (stores[0], stores[1])
            // Another process leads one key, which this one waits for.
            let held = unique("held")
            let lease = try #require(try await other.acquire(key: held, holder: "other", ttl: .seconds(60)).lease)
            let keys = (0..<5).map { _ in unique("one") }
            let electors = try (keys + [held, held]).enumerated().map { index, key in
                try LeaderElector(
                    store: store, key: key, holder: "h\(index)", configuration: ElectorConfiguration(ttl: .seconds(3)))
            }
            let tasks = electors.map { elector in Task { try await elector.run() } }
            defer { for task in tasks { task.cancel() } }
            try await waitUntil("five leaders and two waiting") {
                electors.prefix(5).allSatisfy { $0.role.lease != nil }
                    && electors.suffix(2).allSatisfy {
                        if case .follower(let leader?) = $0.role { return leader.holder == "other" }
                        return false
                    }
            }
            // Transactions (a completion) and plain statements interleave on the one connection.
            let system = unique("rounds")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 0..<10 {
                    group.addTask {
                        #expect(try await store.claim(system: system, round: "r\(round)", candidate: "c") == .won)
                        try await store.complete(system: system, round: "r\(round)", by: .candidate("c"))
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await TestServer.sessions(named: name, url: url).count == 1)
            // The next in line takes the key when the other process lets it go.
            try await other.release(lease)
            try await waitUntil("a waiting elector leads") { electors.suffix(2).contains { $0.role.lease != nil } }
            #expect(try await TestServer.sessions(named: name, url: url).count == 1)
            for task in tasks { task.cancel() }
            for task in tasks { _ = try? await task.value }
        }
        // Stopped: its connection is closed.
        try await waitUntil("the session closed") { try await TestServer.sessions(named: name, url: url).count == 0 }
    }

    /// A candidate process releases once, at the end of its term and on the handover's path: a moment after a
    /// holder leads, the one connection's session runs a release once and rolls it back, so the release does not
    /// compile its functions. Once per connection; nothing of it stays, and the release works after it.
    @Test func aLeadReadiesTheSessionForTheReleaseOnce() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-ready")
        let clock = ManualClock()
        let driver = try PostgresLeaseStore(
            url: try StoreURL("\(url)?application_name=\(name)&pool_max_conns=1"), clock: clock)
        let marker = "baton_release('', '', 1)"
        try await using(driver) { store in
            let key = unique("ready")
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(30)).lease)
            // Not before the delay: the session's last statement is the acquire's.
            #expect(driver.readyingLooks.load(ordering: .relaxed) == 0)
            #expect(try await TestServer.lastStatements(named: name, url: url).allSatisfy { !$0.contains(marker) })
            clock.advance(by: PostgresLeaseStore.readyingDelay)
            try await waitUntil("the lead was looked at") { driver.readyingLooks.load(ordering: .relaxed) == 1 }
            #expect(driver.readiedSessions.load(ordering: .relaxed) == 1)
            #expect(try await TestServer.lastStatements(named: name, url: url).contains { $0.contains(marker) })
            // Another lead on the same connection does not ready it again.
            let other = try #require(
                try await store.acquire(key: unique("ready"), holder: "a", ttl: .seconds(30)).lease)
            clock.advance(by: PostgresLeaseStore.readyingDelay)
            try await waitUntil("the second lead was looked at") { driver.readyingLooks.load(ordering: .relaxed) == 2 }
            #expect(driver.readiedSessions.load(ordering: .relaxed) == 1)
            // The readying left nothing: no row of the empty key, the terms stand, and release as usual.
            #expect(try await TestServer.rows(ofKey: "", url: url) == 0)
            #expect(try await store.current(key: key)?.token == lease.token)
            try await store.release(lease)
            try await store.release(other)
            #expect(try await store.current(key: key) == nil)
        }
    }
}
