import Baton
import BatonTestKit
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import BatonPostgres

/// The PostgreSQL store against a real server: many store instances (standing for processes) on one key,
/// handover through LISTEN/NOTIFY, schemas, and errors.
@Suite struct PostgresLeaseStoreTests {
    @Test func fiftyConcurrentAcquirersOnOneKeyFromFiftyStores() async throws {
        guard let url = try TestServer.url() else { return }
        let stores = try (0..<50).map { _ in
            LeaseStore(try PostgresLeaseStore(url: url, configuration: .init(maximumConnections: 1)))
        }
        try await usingAll(stores) { stores in try await race(stores) }
    }

    private func race(_ stores: [LeaseStore]) async throws {
        let key = unique("race")
        var lastToken: FencingToken = 0
        // Round 0 races for a free key; its winner then shortens its term, so round 1 races for an expired key;
        // later rounds race for a released key. (A short ttl during a race would let a slow acquirer take over
        // legitimately after the expiry.)
        let ttl: Duration = .seconds(60)
        for round in 0..<5 {
            let answers = try await withThrowingTaskGroup(of: (Int, AcquireResult).self) { group in
                for (index, store) in stores.enumerated() {
                    group.addTask {
                        (index, try await store.acquire(key: key, holder: "p\(index)", ttl: ttl, metadata: "m\(index)"))
                    }
                }
                var answers: [(Int, AcquireResult)] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            let winners = answers.compactMap { index, result in result.lease.map { (index, $0) } }
            #expect(winners.count == 1, "round \(round): \(winners.count) acquirers won")
            let (winnerIndex, lease) = try #require(winners.first)
            #expect(lease.holder == "p\(winnerIndex)" && lease.metadata == "m\(winnerIndex)")
            #expect(lease.token > lastToken, "round \(round): token \(lease.token) is not above \(lastToken)")
            for (index, result) in answers where index != winnerIndex {
                guard case .held(let leader) = result else {
                    Issue.record("round \(round): p\(index) got \(result)")
                    continue
                }
                #expect(
                    leader.holder == lease.holder && leader.token == lease.token && leader.metadata == lease.metadata)
                #expect(leader.remaining.map { $0 > .zero && $0 <= ttl } ?? false)
            }
            lastToken = lease.token
            if round == 0 {
                _ = try await stores[winnerIndex].renew(lease, ttl: .milliseconds(200))
                try #require(
                    try await eventually { try await stores[0].current(key: key) == nil }, "the short term expires")
            } else {
                try await stores[winnerIndex].release(lease)
            }
        }
    }

    @Test func releaseInOneStoreWakesAWaiterInAnotherAtOnce() async throws {
        guard let holderStore = try TestServer.store(), let waiterStore = try TestServer.store() else { return }
        try await using(holderStore) { holderStore in
            try await using(waiterStore) { waiterStore in
                let key = unique("handover")
                let lease = try #require(
                    try await holderStore.acquire(key: key, holder: "a", ttl: .seconds(120), metadata: "addr-a").lease
                )
                let observations = ChangeRecorder(try waiterStore.changes(key: key))
                defer { observations.cancel() }
                try #require(try await observations.wait { $0.last??.holder == "a" }, "the holder")
                let released = ContinuousClock.now
                try await holderStore.release(lease)
                try #require(try await observations.wait { $0.last == .some(nil) }, "nil after the release")
                // Pushed, not found by a poll or an expiry: a 120 s term was released and seen within seconds.
                #expect(ContinuousClock.now - released < .seconds(5))
                let next = try #require(
                    try await waiterStore.acquire(key: key, holder: "b", ttl: .seconds(120), metadata: nil).lease
                )
                #expect(next.token > lease.token)
                try #require(try await observations.wait { $0.last??.holder == "b" }, "the new holder")
                try await waiterStore.release(next)
            }
        }
    }

    @Test func schemasAreIndependentAndSetUpOnceByManyStoresAtOnce() async throws {
        guard let url = try TestServer.url() else { return }
        let schema = "baton_test_" + unique("s").replacingOccurrences(of: "-", with: "_").lowercased()
        let drivers = try (0..<8).map { _ in
            try PostgresLeaseStore(url: url, configuration: .init(schema: schema, maximumConnections: 1))
        }
        #expect(drivers.allSatisfy { $0.configuration.schema == schema })
        let viaURL = try PostgresLeaseStore(url: try StoreURL("\(url)?schema=\(schema)"))
        #expect(viaURL.configuration.schema == schema)
        guard let other = try TestServer.store() else { return }
        try await usingAll(drivers.map { LeaseStore($0) }) { stores in
            try await checkSchema(stores, viaURL: viaURL, other: other)
        }
    }

    @Test("stores that waited for another's setup of a new schema find it done, and change nothing")
    func setupsThatWaitedFindItDone() async throws {
        guard let url = try TestServer.url() else { return }
        let schema = "baton_test_" + unique("w").replacingOccurrences(of: "-", with: "_").lowercased()
        let logger = Logger(label: "baton.tests")
        let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
        let admin = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(.init()), id: 1, logger: logger)
        func value(_ sql: String) async throws -> String? {
            let rows = try await admin.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
            return try rows.first?.decode(String?.self)
        }
        // Every setup on the server waits for this lock: the stores below all find the schema missing, then queue.
        _ = try await value("SELECT pg_advisory_lock(\(PostgresSchema.setupLockKey))::text")
        let stores = try (0..<4).map { _ in
            LeaseStore(
                try PostgresLeaseStore(
                    url: try StoreURL("\(url)?application_name=\(schema)"),
                    configuration: .init(schema: schema, maximumConnections: 1)))
        }
        do {
            try await usingAll(stores) { stores in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for store in stores { group.addTask { _ = try await store.current(key: "k") } }
                    try await waitUntil("four setups wait for the lock") {
                        try await value(
                            """
                            SELECT count(*)::text FROM pg_locks JOIN pg_stat_activity USING (pid)
                            WHERE locktype = 'advisory' AND NOT granted AND application_name = '\(schema)'
                            """) == "4"
                    }
                    _ = try await value("SELECT pg_advisory_unlock(\(PostgresSchema.setupLockKey))::text")
                    try await group.waitForAll()
                }
            }
            // The first setup made the schema and its functions in one transaction; none after it rewrote them.
            let made = try await value("SELECT xmin::text FROM pg_namespace WHERE nspname = '\(schema)'")
            let functions = try await value(
                """
                SELECT string_agg(DISTINCT xmin::text, ',') FROM pg_proc
                WHERE pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = '\(schema)')
                """)
            #expect(
                made != nil && functions == made, "schema made by \(made ?? "nil"), functions by \(functions ?? "nil")")
        } catch {
            _ = try? await value("SELECT pg_advisory_unlock_all()::text")
            _ = try? await admin.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"), logger: logger)
            try? await admin.close()
            throw error
        }
        try await admin.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"), logger: logger)
        try await admin.close()
    }

    private func checkSchema(_ stores: [LeaseStore], viaURL: PostgresLeaseStore, other: PostgresLeaseStore)
        async throws
    {
        try await using(viaURL) { viaURL in
            try await using(other) { other in
                let key = unique("schema")
                let inSchema = try #require(
                    try await stores[0].acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
                let inPublic = try #require(
                    try await other.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil).lease)
                #expect(try await viaURL.current(key: key)?.holder == "a")
                #expect(try await stores[7].current(key: key)?.holder == "a")
                #expect(try await other.current(key: key)?.holder == "b")
                try await stores[0].release(inSchema)
                try await other.release(inPublic)
                // Claims are a statement prepared per connection: each store's is its own schema's, also when the
                // stores take turns.
                let round = unique("round")
                for _ in 0..<3 {
                    #expect(
                        try await stores[1].claim(system: "s", round: round, candidate: "a", retention: .seconds(60))
                            == .won)
                    #expect(
                        try await other.claim(system: "s", round: round, candidate: "b", retention: .seconds(60))
                            == .won)
                    #expect(
                        try await viaURL.claim(system: "s", round: round, candidate: "c", retention: .seconds(60))
                            == .lost(winner: "a"))
                }
                #expect(try await other.winner(system: "s", round: round) == "b")
            }
        }
    }

    @Test func anUnreachableServerIsStoreUnavailableAndThePasswordIsNeverShown() async throws {
        let url = try StoreURL("postgres://baton:hunter2secret@127.0.0.1:1/db?sslmode=disable")
        let clock = ManualClock()
        let driver = try PostgresLeaseStore(url: url, configuration: .init(connectTimeout: .seconds(2)), clock: clock)
        let running = Task { try await driver.run() }
        // run() keeps trying (its pause on the store's clock); meanwhile requests fail at once, saying why.
        await clock.waitForSleepers(atLeast: 1)
        #expect(clock.nextDeadline == clock.now + .milliseconds(200))
        let error = try #require(await batonError { _ = try await driver.current(key: "k") })
        #expect(error.code == .storeUnavailable)
        #expect(error.message.contains("cannot connect") && error.message.contains("trying again"))
        #expect(error.message.contains("postgres://baton:***@127.0.0.1:1/db"))
        #expect(!error.description.contains("hunter2secret"))
        #expect(!String(reflecting: error).contains("hunter2secret"))
        // The next attempt comes after the pause, and the pause doubles.
        clock.advance(by: .milliseconds(200))
        try await waitUntil("the second pause") { clock.nextDeadline == clock.now + .milliseconds(400) }
        // Cancelled, run() ends and requests say the store has stopped.
        running.cancel()
        _ = try? await running.value
        #expect(await batonError { _ = try await driver.current(key: "k") }?.message.contains("has stopped") == true)
    }

    @Test func metadataWithNULIsRefusedBeforeAnyIO() async throws {
        guard let store = try TestServer.store() else { return }
        try await using(store) { store in
            let code = await batonErrorCode {
                _ = try await store.acquire(key: unique("nul"), holder: "a", ttl: .seconds(1), metadata: "a\u{0}b")
            }
            #expect(code == .invalidArgument)
        }
    }
}
