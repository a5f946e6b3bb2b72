import Baton
import BatonTestKit
import Foundation
import Testing

@testable import BatonSQLite

/// Two store instances on one file behave as two processes would.
@Suite struct SQLiteLeaseStoreTests {
    @Test func twoInstancesExcludeEachOther() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("exclusive")
            let firstAnswer = try await a.acquire(key: key, holder: "a", ttl: .seconds(10), metadata: "10.0.0.1")
            let lease = try #require(firstAnswer.lease)
            #expect(lease.token >= 1)

            let answer = try await b.acquire(key: key, holder: "b", ttl: .seconds(10))
            guard case .held(let leader) = answer else {
                Issue.record("b acquired a key that a holds: \(answer)")
                return
            }
            #expect(leader.holder == "a")
            #expect(leader.token == lease.token)
            #expect(leader.metadata == "10.0.0.1")
            #expect(leader.ttl == .seconds(10))
            let remaining = try #require(leader.remaining)
            #expect(remaining > .zero && remaining <= .seconds(10))

            let seen = try #require(try await b.current(key: key))
            #expect(seen.holder == "a" && seen.token == lease.token)
        }
    }

    @Test func sameHolderAcquireRenewsWithSameToken() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("renew-by-acquire")
            let first = try #require(
                try await a.acquire(key: key, holder: "a", ttl: .seconds(5), metadata: "one").lease
            )
            // The same holder through another instance (a restarted process) renews, keeping the token.
            let second = try #require(
                try await b.acquire(key: key, holder: "a", ttl: .seconds(20), metadata: "two").lease
            )
            #expect(second.token == first.token)
            #expect(second.ttl == .seconds(20))
            let info = try #require(try await a.current(key: key))
            #expect(info.metadata == "two")
            #expect(info.ttl == .seconds(20))
            #expect(try #require(info.remaining) > .seconds(5))
        }
    }

    @Test func renewKeepsTokenAndIsGuardedByHolderAndToken() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("renew")
            var lease = try #require(try await a.acquire(key: key, holder: "a", ttl: .seconds(5)).lease)
            lease.metadata = "new address"
            let renewed = try await a.renew(lease, ttl: .seconds(30))
            #expect(renewed.token == lease.token)
            #expect(renewed.ttl == .seconds(30))
            #expect(try await b.current(key: key)?.metadata == "new address")

            var forged = lease
            forged.holder = "b"
            #expect(await batonErrorCode { _ = try await b.renew(forged, ttl: .seconds(5)) } == .lost)
            var stale = lease
            stale.token += 1
            #expect(await batonErrorCode { _ = try await b.renew(stale, ttl: .seconds(5)) } == .lost)
            // A release of another term is a no-op.
            try await b.release(forged)
            #expect(try await a.current(key: key)?.holder == "a")
        }
    }

    @Test func releaseKeepsTheTokenHistory() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("release")
            let first = try #require(try await a.acquire(key: key, holder: "a", ttl: .seconds(10)).lease)
            try await a.release(first)
            #expect(try await b.current(key: key) == nil)
            let second = try #require(try await b.acquire(key: key, holder: "b", ttl: .seconds(10)).lease)
            #expect(second.token == first.token + 1)
            // The old term's renew and release no longer touch the new one.
            #expect(await batonErrorCode { _ = try await a.renew(first, ttl: .seconds(10)) } == .lost)
            try await a.release(first)
            #expect(try await a.current(key: key)?.holder == "b")
        }
    }

    @Test func takeoverAfterExpiryGetsALargerToken() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("expiry")
            let first = try #require(try await a.acquire(key: key, holder: "a", ttl: .milliseconds(150)).lease)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await b.current(key: key) == nil)
            let second = try #require(try await b.acquire(key: key, holder: "b", ttl: .seconds(10)).lease)
            #expect(second.token > first.token)
            #expect(await batonErrorCode { _ = try await a.renew(first, ttl: .seconds(10)) } == .lost)
            // An expired holder acquiring again while someone else leads is refused.
            let answer = try await a.acquire(key: key, holder: "a", ttl: .seconds(10))
            guard case .held(let leader) = answer else {
                Issue.record("the expired holder took the key back: \(answer)")
                return
            }
            #expect(leader.holder == "b" && leader.token == second.token)
        }
    }

    @Test func tokensSurviveCloseAndReopen() async throws {
        try await withDatabase { path throws in
            let key = unique("durable")
            let a = try await SQLiteLeaseStore(path: path)
            let first = try #require(try await a.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: "m").lease)
            try await a.close()

            // A lease held when its process went away is still held (same boot).
            let b = try await SQLiteLeaseStore(path: path)
            let held = try #require(try await b.current(key: key))
            #expect(held.holder == "a" && held.token == first.token && held.metadata == "m")
            try await b.release(first)
            try await b.close()

            let c = try await SQLiteLeaseStore(path: path)
            let next = try #require(try await c.acquire(key: key, holder: "c", ttl: .seconds(10), metadata: nil).lease)
            #expect(next.token == first.token + 1)
            try await c.close()
        }
    }

    @Test func onlyOneOfManyConcurrentCandidatesWins() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("race")
            let winners = try await withThrowingTaskGroup(of: Lease?.self) { group in
                for index in 0..<16 {
                    let store = index.isMultiple(of: 2) ? a : b
                    group.addTask {
                        try await store.acquire(key: key, holder: "candidate-\(index)", ttl: .seconds(10)).lease
                    }
                }
                return try await group.reduce(into: [Lease]()) { if let lease = $1 { $0.append(lease) } }
            }
            #expect(winners.count == 1)
            #expect(try await a.current(key: key)?.holder == winners.first?.holder)
        }
    }

    @Test func leaseWrittenUnderAnotherBootIsExpired() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("reboot")
            let first = try #require(try await a.acquire(key: key, holder: "a", ttl: .seconds(3600)).lease)
            // As if the host had rebooted since the lease was written.
            try await a.sqlite.withSession("test") { db in
                try await db.execute("UPDATE baton_leases SET boot_id = 'another-boot' WHERE key = '\(key)'")
            }
            #expect(try await b.current(key: key) == nil)
            #expect(await batonErrorCode { _ = try await a.renew(first, ttl: .seconds(10)) } == .lost)
            let second = try #require(try await b.acquire(key: key, holder: "b", ttl: .seconds(10)).lease)
            #expect(second.token == first.token + 1)
        }
    }

    @Test func busyBeyondTheTimeoutIsATimeout() async throws {
        try await withDatabase { path throws in
            let a = try await SQLiteLeaseStore(path: path)
            let b = try await SQLiteLeaseStore(path: path, configuration: .init(busyTimeout: .milliseconds(100)))
            let (locked, lockedContinuation) = AsyncStream<Void>.makeStream()
            // `a` holds the write lock for a while, as a stuck process would.
            let holder = Task {
                try await a.withSession("test") { db in
                    try await db.execute("BEGIN IMMEDIATE")
                    lockedContinuation.yield()
                    try? await Task.sleep(for: .milliseconds(1500))
                    try await db.execute("ROLLBACK")
                }
            }
            for await _ in locked { break }
            let code = await batonErrorCode {
                _ = try await b.acquire(key: "k", holder: "b", ttl: .seconds(1), metadata: nil)
            }
            #expect(code == .timeout)
            try await holder.value
            #expect(try await b.acquire(key: "k", holder: "b", ttl: .seconds(1), metadata: nil).lease != nil)
            try await a.close()
            try await b.close()
        }
    }

    @Test func cancelledWhileWaitingForItsTurnDoesNothing() async throws {
        try await withTwoStores { a, _ in
            let key = unique("cancelled")
            let (busy, busyContinuation) = AsyncStream<Void>.makeStream()
            let blocker = Task {
                try await a.sqlite.withSession("test") { _ in
                    busyContinuation.yield()
                    try? await Task.sleep(for: .milliseconds(300))
                }
            }
            for await _ in busy { break }
            let waiter = Task { try await a.acquire(key: key, holder: "w", ttl: .seconds(10)) }
            try await Task.sleep(for: .milliseconds(50))
            waiter.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiter.value }
            try await blocker.value
            #expect(try await a.current(key: key) == nil)
        }
    }

    @Test func cancellationsNeverLeaveATransactionOpen() async throws {
        try await withTwoStores { a, b in
            let key = unique("cancel-storm")
            let tasks = (0..<20).map { index in
                Task { try await a.acquire(key: key, holder: "h\(index)", ttl: .milliseconds(50)) }
            }
            for (index, task) in tasks.enumerated() {
                if index.isMultiple(of: 3) { try await Task.sleep(for: .milliseconds(1)) }
                task.cancel()
            }
            for task in tasks { _ = try? await task.value }
            // Both instances can still write: no cancelled operation left the write lock taken.
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await b.acquire(key: key, holder: "b", ttl: .seconds(10)).lease != nil)
            #expect(try await a.acquire(key: unique("after"), holder: "a", ttl: .seconds(10)).lease != nil)
        }
    }

    @Test func closedStoreIsUnavailable() async throws {
        try await withDatabase { path throws in
            let store = try await SQLiteLeaseStore(path: path)
            let recorder = ChangeRecorder(try store.changes(key: "k"))
            #expect(try await recorder.wait { $0.count == 1 })
            try await store.close()
            try await store.close()
            #expect(await batonErrorCode { _ = try await store.current(key: "k") } == .storeUnavailable)
            #expect(
                await batonErrorCode {
                    _ = try await store.acquire(key: "k", holder: "h", ttl: .seconds(1), metadata: nil)
                }
                    == .storeUnavailable)
            #expect(try await recorder.waitForEnd())
            #expect((recorder.error as? BatonError)?.code == .storeUnavailable)
        }
    }

    @Test func storeDroppedWithoutCloseDoesNotCrash() async throws {
        try await withDatabase { path throws in
            do {
                let store = try await SQLiteLeaseStore(path: path)
                _ = try await store.acquire(key: "k", holder: "h", ttl: .seconds(1), metadata: nil)
                let recorder = ChangeRecorder(try store.changes(key: "k"))
                #expect(try await recorder.wait { $0.count == 1 })
                recorder.cancel()
                _ = try await recorder.waitForEnd()
            }
            try await Task.sleep(for: .milliseconds(100))
            let again = try await SQLiteLeaseStore(path: path)
            #expect(try await again.current(key: "k")?.holder == "h")
            try await again.close()
        }
    }

    @Test func createsWALDatabaseAndChangeFile() async throws {
        try await withDatabase { path throws in
            let store = try await SQLiteLeaseStore(path: path)
            #expect(FileManager.default.fileExists(atPath: path + "-notify"))
            #expect(FileManager.default.fileExists(atPath: path + "-wal"))
            try await store.close()
        }
    }
}
