import Baton
import BatonTestKit
import Testing

@testable import BatonSQLite

/// `changes(key:)` is pushed across instances (processes) through the change file.
@Suite struct SQLiteChangesTests {
    @Test func releaseOnOneInstanceWakesAWatcherOnAnother() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("handover")
            let recorder = ChangeRecorder(try b.changes(key: key))
            defer { recorder.cancel() }
            #expect(try await recorder.wait { $0 == [nil] })

            var lease = try #require(try await a.acquire(key: key, holder: "a", ttl: .seconds(60)).lease)
            #expect(try await recorder.wait { $0.last??.holder == "a" })

            lease.metadata = "moved"
            _ = try await a.renew(lease, ttl: .seconds(60))
            #expect(try await recorder.wait { $0.last??.metadata == "moved" })

            // The term has a minute left: only the push can deliver the release within the wait.
            try await a.release(lease)
            #expect(try await recorder.wait(timeout: .seconds(2)) { $0.count >= 4 && $0.last! == nil })
        }
    }

    @Test func takeoverOnOneInstanceWakesAWatcherOnAnother() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("takeover")
            let old = try #require(try await b.acquire(key: key, holder: "b", ttl: .seconds(60)).lease)
            let recorder = ChangeRecorder(try b.changes(key: key))
            defer { recorder.cancel() }
            #expect(try await recorder.wait { $0.last??.holder == "b" })
            try await b.sqlite.withSession("test") { db in
                try await db.execute("UPDATE baton_leases SET boot_id = 'another-boot' WHERE key = '\(key)'")
            }
            let new = try #require(try await a.acquire(key: key, holder: "a", ttl: .seconds(60)).lease)
            #expect(new.token == old.token + 1)
            #expect(try await recorder.wait(timeout: .seconds(2)) { $0.last??.token == new.token })
        }
    }

    @Test func expiryIsSeenWithoutAWrite() async throws {
        let clock = ManualClock()
        try await withTwoStores(clock: clock) { a, b throws in
            let key = unique("expiry-feed")
            _ = try #require(try await a.acquire(key: key, holder: "a", ttl: .milliseconds(200)).lease)
            let recorder = ChangeRecorder(try b.changes(key: key))
            defer { recorder.cancel() }
            #expect(try await recorder.wait { $0.first??.holder == "a" })
            // The feed's timer, at the term's end, is what sees the expiry: nothing is written.
            await clock.waitForSleepers(atLeast: 1)
            // The term ends at 200 ms: a read at that instant still sees it (it expires after its end).
            clock.advance(by: .milliseconds(201))
            #expect(try await recorder.wait { $0.count == 2 && $0.last! == nil })
        }
    }

    @Test func watchersOfOtherKeysSeeNoChange() async throws {
        try await withTwoStores { a, b throws in
            let watched = unique("watched")
            let recorder = ChangeRecorder(try b.changes(key: watched))
            defer { recorder.cancel() }
            #expect(try await recorder.wait { $0 == [nil] })
            let other = try #require(try await a.acquire(key: unique("other"), holder: "a", ttl: .seconds(5)).lease)
            try await a.release(other)
            try await Task.sleep(for: .milliseconds(100))
            #expect(recorder.observations == [nil])
        }
    }

    @Test func invalidKeyIsRefusedAtOnce() async throws {
        try await withTwoStores { a, _ throws in
            #expect(await batonErrorCode { _ = try a.changes(key: "") } == .invalidArgument)
        }
    }
}
