import Baton
import BatonTestKit
import Foundation
import Testing

@testable import BatonSQLite

/// Operations that arrive together share one turn of the connection: their writes one transaction (one commit),
/// each write still atomic on its own.
@Suite struct SQLiteTurnTests {
    /// Holds `store`'s connection until `release` yields, so that operations started meanwhile share the next turn.
    private func holdTurn(_ store: SQLiteLeaseStore) async -> (Task<Void, any Error>, AsyncStream<Void>.Continuation) {
        let (held, heldContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let blocker = Task {
            try await store.withSession("test") { _ in
                heldContinuation.yield()
                for await _ in release { break }
            }
        }
        for await _ in held { break }
        return (blocker, releaseContinuation)
    }

    /// Requests run in their callers' tasks (the store honours request aborts): one still waiting for its turn at
    /// its deadline ends with `timeout` and leaves the queue, so it is never run.
    @Test func aRequestWaitingForItsTurnAtItsDeadlineTimesOutAndIsNotRun() async throws {
        let clock = ManualClock()
        try await withDatabase { path in
            let store = LeaseStore(
                try SQLiteLeaseStore(path: path), configuration: .init(requestTimeout: .seconds(1)), clock: clock)
            #expect(store.driver.honoursRequestAbort)
            try await store.withRunning { store in
                let key = unique("turn-deadline")
                let (blocker, release) = await holdTurn(store.sqlite)
                let acquire = Task { try await store.acquire(key: key, holder: "late", ttl: .seconds(30)) }
                while store.sqlite.queuedOperations < 1 { try await Task.sleep(for: .milliseconds(1)) }
                await clock.waitForSleepers(atLeast: 1)
                clock.advance(by: .seconds(1))
                #expect(await batonErrorCode { _ = try await acquire.value } == .timeout)
                #expect(store.sqlite.queuedOperations == 0)
                release.yield()
                try await blocker.value
                #expect(try await store.current(key: key) == nil)
            }
        }
    }

    @Test func aWriteThatThrowsIsRolledBackAloneInItsTurn() async throws {
        try await withTwoStores { a, b in
            let group = unique("turn")
            let (blocker, release) = await holdTurn(a.sqlite)
            let first = Task { try await a.heartbeat(group: group, member: "first", ttl: .seconds(60)) }
            let bootID = try #require(HostClock.bootID())
            let failing = Task {
                try await a.sqlite.transaction("test") { db, now in
                    // A live member, as a heartbeat writes it: only the rollback can keep it out of the listing.
                    try await db.execute(
                        """
                        INSERT INTO baton_presence (group_name, member, expires_ns, boot_id)
                        VALUES ('\(group)', 'failing', \(now + 60_000_000_000), '\(bootID)')
                        """
                    )
                    throw BatonError.invalidArgument("the test's write fails after its insert")
                }
            }
            let last = Task { try await a.heartbeat(group: group, member: "last", ttl: .seconds(60)) }
            while a.sqlite.queuedOperations < 3 { try await Task.sleep(for: .milliseconds(1)) }
            release.yield()
            try await blocker.value
            try await first.value
            try await last.value
            await #expect(throws: BatonError.self) { try await failing.value }
            #expect(try await b.members(group: group) == ["first", "last"])
            let rows = try await b.sqlite.withSession("test") { db in
                try await db.rows("SELECT member FROM baton_presence WHERE group_name = '\(group)'").count
            }
            #expect(rows == 2)
        }
    }

    @Test func concurrentWritesAndReadsShareTurnsAndAllAnswer() async throws {
        try await withTwoStores { a, _ in
            let prefix = unique("many")
            let (blocker, release) = await holdTurn(a.sqlite)
            // Fewer acquires than the front lets run at once (LeaseStoreCore.maximumAcquiresUnderWay), so that all
            // of them reach the store's queue.
            let acquires = (0..<200).map { index in
                Task { try await a.acquire(key: "\(prefix)-\(index)", holder: "h", ttl: .seconds(60), metadata: nil) }
            }
            let reads = (0..<300).map { index in Task { try await a.current(key: "\(prefix)-\(index)") } }
            #expect(try await eventually { a.sqlite.queuedOperations == 500 })
            release.yield()
            try await blocker.value
            for task in acquires { #expect(try await task.value.lease?.token == 1) }
            for task in reads { _ = try await task.value }
            // The reads of a turn run after its writes are committed: every key is held now.
            for index in 0..<200 { #expect(try await a.current(key: "\(prefix)-\(index)")?.holder == "h") }
        }
    }

    @Test func aCancelledOperationLeavesItsTurnUndone() async throws {
        try await withTwoStores { a, _ in
            let key = unique("cancelled-turn")
            let (blocker, release) = await holdTurn(a.sqlite)
            let cancelled = Task { try await a.acquire(key: key, holder: "gone", ttl: .seconds(60), metadata: nil) }
            let kept = Task { try await a.acquire(key: key, holder: "kept", ttl: .seconds(60), metadata: nil) }
            while a.sqlite.queuedOperations < 2 { try await Task.sleep(for: .milliseconds(1)) }
            cancelled.cancel()
            await #expect(throws: CancellationError.self) { _ = try await cancelled.value }
            release.yield()
            try await blocker.value
            #expect(try await kept.value.lease?.holder == "kept")
        }
    }
}
