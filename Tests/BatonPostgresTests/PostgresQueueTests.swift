@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Foundation
import Logging
import PostgresNIO
import Synchronization
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

    /// Followers in another store instance learn the release's hand-over from its notification alone: their
    /// feed reads the database once, at the start.
    @Test func feedsLearnTheNextTermFromTheReleaseNotification() async throws {
        guard let first = try TestServer.store(), let otherDriver = try TestServer.store() else { return }
        try await usingAll([LeaseStore(first), LeaseStore(otherDriver)]) { stores in
            let (store, other) = (stores[0], stores[1])
            let key = unique("queue-feed")
            let lease = try #require(try await store.acquire(key: key, holder: "leader", ttl: Self.long).lease)
            _ = try await store.acquire(key: key, holder: "next", ttl: Self.long, metadata: "m é", waiting: true)
            let recorder = try ObservationRecorder(other, key: key, count: 5)
            defer { recorder.cancel() }
            #expect(try await eventually { recorder.leaders.count == 5 })
            // New metadata, seen once the listening connection is up (its start makes every feed read).
            var renewing = lease
            renewing.metadata = "listening"
            let renewed = try await store.renew(renewing, ttl: Self.long)
            #expect(try await eventually { recorder.leaders.count == 10 })
            #expect(recorder.leaders.last??.metadata == "listening")
            let readsBefore = otherDriver.feedLooks.load(ordering: .relaxed)
            try await store.release(renewed)
            #expect(try await eventually { recorder.leaders.count == 15 })
            for info in recorder.leaders.suffix(5) {
                #expect(info?.holder == "next")
                #expect(info?.metadata == "m é")
                #expect(info?.token == lease.token + 1)
            }
            #expect(otherDriver.feedLooks.load(ordering: .relaxed) == readsBefore, "the feed read after the release")
            let next = try #require(
                try await other.acquire(key: key, holder: "next", ttl: Self.long, metadata: "m é", waiting: true).lease)
            try await other.release(next)
            #expect(try await eventually { recorder.leaders.last == .some(nil) })
        }
    }

    /// A candidate that its store was notified has been handed the key takes the term from the notification,
    /// with no write: its lease's ttl is the time left until its last refused ask plus the ttl, below the one asked;
    /// its renew extends it as usual.
    @Test func aHandedOverCandidateTakesItsTermFromTheNotification() async throws {
        guard let first = try TestServer.store(), let second = try TestServer.store() else { return }
        try await usingAll([LeaseStore(first), LeaseStore(second)]) { stores in
            let (store, other) = (stores[0], stores[1])
            let key = unique("queue-confirm")
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: Self.long).lease)
            _ = try await other.acquire(key: key, holder: "b", ttl: Self.long, metadata: "m", waiting: true)
            let recorder = try ObservationRecorder(other, key: key, count: 1)
            defer { recorder.cancel() }
            #expect(try await eventually { recorder.leaders.last??.holder == "a" })
            // New metadata, seen once the listening connection is up.
            var renewing = lease
            renewing.metadata = "listening"
            let renewed = try await store.renew(renewing, ttl: Self.long)
            #expect(try await eventually { recorder.leaders.last??.metadata == "listening" })
            try await store.release(renewed)
            #expect(try await eventually { recorder.leaders.last??.holder == "b" })
            let next = try #require(
                try await other.acquire(key: key, holder: "b", ttl: Self.long, metadata: "m", waiting: true).lease)
            #expect(next.token == lease.token + 1)
            #expect(next.ttl < Self.long && next.ttl > Self.long / 2, "not taken from the notification: \(next.ttl)")
            let extended = try await other.renew(next, ttl: Self.long)
            #expect(extended.ttl == Self.long)
            // Other metadata than the queue's is a write, which publishes it.
            let changed = try #require(
                try await other.acquire(key: key, holder: "b", ttl: Self.long, metadata: "n", waiting: true).lease)
            #expect(changed.ttl == Self.long && changed.token == next.token)
            try await other.release(changed)
        }
    }

    /// A notification naming a term older than one the candidate's store has since seen in an answer (a late
    /// or stale one) is never taken: the acquire asks the database.
    @Test func aStaleNotificationOfAHandedTermIsNotTaken() async throws {
        guard let first = try TestServer.store(), let driver = try TestServer.store() else { return }
        try await usingAll([LeaseStore(first), LeaseStore(driver)]) { stores in
            let (store, other) = (stores[0], stores[1])
            let key = unique("queue-stale")
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: Self.long).lease)
            _ = try await other.acquire(key: key, holder: "b", ttl: Self.long, waiting: true)
            let recorder = try ObservationRecorder(other, key: key, count: 1)
            defer { recorder.cancel() }
            #expect(try await eventually { recorder.leaders.last??.holder == "a" })
            // New metadata, seen once the listening connection is up.
            var renewing = lease
            renewing.metadata = "listening"
            let renewed = try await store.renew(renewing, ttl: Self.long)
            #expect(try await eventually { recorder.leaders.last??.metadata == "listening" })
            try await store.release(renewed)
            #expect(try await eventually { recorder.leaders.last??.holder == "b" })
            let taken = try #require(
                try await other.acquire(key: key, holder: "b", ttl: Self.long, waiting: true).lease)
            #expect(taken.ttl < Self.long, "not taken from the notification: \(taken.ttl)")
            try await other.release(taken)
            // c takes the key; b, asking again, is refused by c.
            let third = try #require(try await store.acquire(key: key, holder: "c", ttl: Self.long).lease)
            let refused = try await other.acquire(key: key, holder: "b", ttl: Self.long, waiting: true)
            #expect(refused.lease == nil)
            // A notification naming b's old term, as a late one would leave it, is not taken.
            driver.states.record(key, .term(LeaderInfo(holder: "b", token: taken.token, ttl: Self.long)))
            let again = try await other.acquire(key: key, holder: "b", ttl: Self.long, waiting: true)
            #expect(again.lease == nil, "took the stale term: \(again)")
            try await other.leaveQueue(key: key, holder: "b")
            try await store.release(third)
        }
    }

    @Test func statePayloadsParse() {
        #expect(PostgresStatePayload.parse("p1 1 17 0 -1 0 k")! == ("k", .free(lastToken: 17)))
        let term = PostgresStatePayload.parse("p1 5 18 1500 5 1 a keya b c{\"x\": 1}")
        #expect(term?.key == "a key")
        #expect(
            term?.state
                == .term(
                    LeaderInfo(
                        holder: "a b c", token: 18, metadata: "{\"x\": 1}", ttl: .milliseconds(1500),
                        remaining: .milliseconds(1500))))
        let accented = PostgresStatePayload.parse("p1 2 3 10 2 0 éé")
        #expect(accented?.key == "é" && accented?.state?.leader?.holder == "é")
        #expect(PostgresStatePayload.parse("p0 some key")?.key == "some key")
        #expect(PostgresStatePayload.parse("p0 some key")?.state == nil)
        for bad in ["k", "p0 ", "p1 1 17 0 -1 0", "p1 9 1 1 1 0 short", "p1 1 x 0 -1 0 k", "p1 1 1 0 -2 0 k", "p2 x"] {
            #expect(PostgresStatePayload.parse(bad) == nil, "\(bad)")
        }
    }

    /// Batons before the states channel listen on `baton_changes_<schema>` for the key alone: the trigger keeps
    /// sending it.
    @Test func theKeyChannelOfEarlierBatonsStillNotifies() async throws {
        guard let url = try TestServer.url(), let driver = try TestServer.store() else { return }
        try await using(driver) { store in
            _ = try await store.current(key: "setup")
            let key = unique("queue-old-channel")
            let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
            let logger = Logger(label: "baton.tests")
            let connection = try await PostgresConnection.connect(
                configuration: try settings.connectionConfiguration(.init()), id: 1, logger: logger)
            defer { Task { try? await connection.close() } }
            try await connection.listen(on: "baton_changes_public") { notifications in
                let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: Self.long).lease)
                try await store.release(lease)
                var keys: [String] = []
                for try await notification in notifications where notification.payload == key {
                    keys.append(notification.payload)
                    if keys.count == 2 { break }
                }
                #expect(keys == [key, key])
            }
        }
    }

    /// A candidate leaves the queue under the key's row lock, which a release handing the key on holds from before
    /// it looks at the queue until it commits. Here another session holds that lock and hands the key on by hand,
    /// as `baton_release` does: the leave waits for it, and the candidate's read after the leave sees the term it
    /// was handed (an elector gives it back). A leave that did not wait could commit between the hand-on's look at
    /// the queue and its write, and the read after it would miss a term that blocks the key for its ttl.
    @Test func aLeaveWaitsForAReleaseHandingTheKeyOn() async throws {
        guard let url = try TestServer.url(), let driver = try TestServer.store() else { return }
        try await using(driver) { store in
            let key = unique("queue-leave-locked")
            let lease = try #require(try await store.acquire(key: key, holder: "leader", ttl: Self.long).lease)
            _ = try await store.acquire(key: key, holder: "leaving", ttl: Self.long, metadata: nil, waiting: true)
            try await withConnection(url: url) { connection, logger in
                func run(_ sql: String) async throws {
                    try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                }
                let quoted = "'\(key)'"
                try await run("BEGIN")
                try await run("SELECT 1 FROM public.baton_leases WHERE key = \(quoted) FOR UPDATE")
                let left = Flag()
                let leaving = Task {
                    try await store.leaveQueue(key: key, holder: "leaving")
                    left.set()
                }
                // The leave either waits on the lock (seen by the server) or, not waiting, is done. The server's
                // view of its sessions is taken once per transaction unless cleared.
                try await waitUntil("the leave waits on the key's row lock or is done") {
                    if left.isSet { return true }
                    try await run("SELECT pg_stat_clear_snapshot()")
                    let rows = try await connection.query(
                        PostgresQuery(
                            unsafeSQL: "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                + "AND query LIKE '%baton_leave%'"), logger: logger
                    ).collect()
                    return try (rows.first?.decode(Int.self) ?? 0) > 0
                }
                #expect(!left.isSet, "the leave did not wait for the key's row lock")
                try await run(
                    "SELECT * FROM public.baton_hand_on(\(quoted), \(lease.token), clock_timestamp())")
                try await run("COMMIT")
                try await leaving.value
            }
            let handed = try #require(try await store.current(key: key))
            #expect(handed.holder == "leaving" && handed.token == lease.token + 1)
            try await store.release(Lease(key: key, holder: "leaving", token: handed.token, ttl: Self.long))
            #expect(try await store.current(key: key) == nil)
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
                "DROP FUNCTION \"\(schema)\".baton_leave",
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

/// A flag set once from any task.
private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
