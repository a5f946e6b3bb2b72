import Baton
import BatonTestKit
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import BatonPostgres

/// The queue of waiting candidates in `baton_waiters`, through two store instances (two processes; arrival
/// order is a conformance check): an expired key that goes to the head, waiters that stop asking, a feed
/// that names the next leader after an expiry, and a database of an earlier setup that gets the queue.
@Suite struct PostgresQueueTests {
    static let long = Duration.seconds(60)

    @Test func anExpiredKeyGoesToTheHeadOfTheQueueAndTheFeedNamesIt() async throws {
        guard let first = try TestServer.store(), let second = try TestServer.store() else { return }
        try await usingAll([LeaseStore(first), LeaseStore(second)]) { stores in
            let (a, b) = (stores[0], stores[1])
            let key = unique("queue-expired")
            let short = try #require(try await a.acquire(key: key, holder: "leader", ttl: .milliseconds(300)).lease)
            _ = try await b.acquire(key: key, holder: "head", ttl: Self.long, metadata: "m", waiting: true)
            let recorder = ChangeRecorder(try b.changes(key: key))
            defer { recorder.cancel() }
            // The feed's read after the expiry hands the key to the head, and names it; nobody is seen leading
            // nothing in between.
            #expect(try await recorder.wait(timeout: .seconds(5)) { $0.last??.holder == "head" })
            #expect(!recorder.observations.contains { $0 == nil })
            #expect(try await a.current(key: key)?.token == short.token + 1)
            // A late candidate is refused with the head.
            let late = try await a.acquire(key: key, holder: "late", ttl: Self.long, metadata: nil, waiting: true)
            #expect(late.lease == nil)
            let head = try #require(
                try await b.acquire(key: key, holder: "head", ttl: Self.long, metadata: "m", waiting: true).lease)
            #expect(head.token == short.token + 1)
            try await b.release(head)
            #expect(try await a.current(key: key)?.holder == "late")
            let lateLease = try #require(try await a.acquire(key: key, holder: "late", ttl: Self.long).lease)
            try await a.release(lateLease)
        }
    }

    @Test func aWaiterThatStopsAskingLeavesTheQueueWithinItsTTL() async throws {
        guard let driver = try TestServer.store() else { return }
        try await using(driver) { store in
            let key = unique("queue-leaves")
            let lease = try #require(try await store.acquire(key: key, holder: "leader", ttl: Self.long).lease)
            _ = try await store.acquire(key: key, holder: "gone", ttl: .milliseconds(200), metadata: nil, waiting: true)
            _ = try await store.acquire(key: key, holder: "stays", ttl: Self.long, metadata: nil, waiting: true)
            try await Task.sleep(for: .milliseconds(400))
            try await store.release(lease)
            #expect(try await store.current(key: key)?.holder == "stays")
            let stays = try #require(try await store.acquire(key: key, holder: "stays", ttl: Self.long).lease)
            try await store.release(stays)
        }
    }

    /// A schema set up before the queue existed (version 1 without `baton_waiters`, the functions and their
    /// version) gets them from the next store that starts.
    @Test func anEarlierSetupGetsTheQueue() async throws {
        guard let url = try TestServer.url() else { return }
        let schema = "baton_test_" + unique("q").replacingOccurrences(of: "-", with: "_").lowercased()
        let configuration = PostgresLeaseStore.Configuration(schema: schema, maximumConnections: 2)
        try await using(try PostgresLeaseStore(url: url, configuration: configuration)) { store in
            _ = try await store.current(key: "k")
        }
        try await dropQueue(url: url, schema: schema)
        try await using(try PostgresLeaseStore(url: url, configuration: configuration)) { store in
            let lease = try #require(try await store.acquire(key: "k", holder: "a", ttl: Self.long).lease)
            _ = try await store.acquire(key: "k", holder: "b", ttl: Self.long, metadata: nil, waiting: true)
            try await store.release(lease)
            #expect(try await store.current(key: "k")?.holder == "b")
            #expect(try await store.claim(system: "s", round: "r", candidate: "c", retention: Self.long) == .won)
        }
        try await dropSchema(url: url, schema: schema)
    }

    private func dropQueue(url: StoreURL, schema: String) async throws {
        try await withConnection(url: url) { connection, logger in
            for statement in [
                "DROP TABLE \"\(schema)\".baton_waiters",
                "DROP FUNCTION \"\(schema)\".baton_acquire", "DROP FUNCTION \"\(schema)\".baton_release",
                "DROP FUNCTION \"\(schema)\".baton_look", "DROP FUNCTION \"\(schema)\".baton_hand_on",
                "DROP FUNCTION \"\(schema)\".baton_join", "DROP FUNCTION \"\(schema)\".baton_claim",
                "DELETE FROM \"\(schema)\".baton_meta WHERE name = 'functions_version'",
            ] {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    private func dropSchema(url: StoreURL, schema: String) async throws {
        try await withConnection(url: url) { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"), logger: logger)
        }
    }

    private func withConnection(url: StoreURL, _ body: (PostgresConnection, Logger) async throws -> Void)
        async throws
    {
        let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
        let logger = Logger(label: "baton.tests")
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(.init()), id: 1, logger: logger)
        do {
            try await body(connection, logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
