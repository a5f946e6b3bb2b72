import Baton
import BatonTestKit
import Foundation
import ServiceLifecycleTestKit
import Testing

@testable import BatonSQLite

/// The store opens its file, its watcher and its turns in `run()`, and closes them all when `run()` ends.
@Suite struct SQLiteLifecycleTests {
    @Test func aCallBeforeRunIsAClearStoreUnavailableAndOpensNothing() async throws {
        try await withDatabase { path throws in
            let clock = ManualClock()
            let store = LeaseStore(try SQLiteLeaseStore(path: path), clock: clock)
            let call = Task { try await store.current(key: "k") }
            await clock.waitForSleepers(atLeast: 1)
            _ = clock.advance(by: .seconds(1))
            do {
                _ = try await call.value
                Issue.record("a call reached a store that was never run")
            } catch let error as BatonError {
                #expect(error.code == .storeUnavailable)
                #expect(error.message.contains("run()"))
            }
            #expect(!FileManager.default.fileExists(atPath: path))
            #expect(!FileManager.default.fileExists(atPath: path + "-notify"))
        }
    }

    @Test func callsMadeBeforeRunIsReadyWaitForIt() async throws {
        try await withDatabase { path throws in
            let driver = try SQLiteLeaseStore(path: path)
            let early = Task { try await driver.acquire(key: "k", holder: "early", ttl: .seconds(60), metadata: nil) }
            while driver.queuedOperations < 1 { try await Task.sleep(for: .milliseconds(1)) }
            try await LeaseStore(driver).withRunning { store throws in
                #expect(try await early.value.lease?.token == 1)
                #expect(try await store.current(key: "k")?.holder == "early")
            }
        }
    }

    @Test func cancellingRunClosesTheFileAndEndsEverything() async throws {
        try await withDatabase { path throws in
            let driver = try SQLiteLeaseStore(path: path)
            let store = LeaseStore(driver)
            let run = Task { try await store.run() }
            let lease = try #require(try await store.acquire(key: "k", holder: "h", ttl: .seconds(60)).lease)
            let recorder = ChangeRecorder(try store.changes(key: "k"))
            #expect(try await recorder.wait { $0.count == 1 })
            #expect(!openDescriptors(of: path).isEmpty)

            run.cancel()
            try await run.value
            #expect(openDescriptors(of: path) == [])
            #expect(try await recorder.waitForEnd())
            #expect((recorder.error as? BatonError)?.code == .storeUnavailable)
            // Later calls fail, through the front and on the driver itself.
            #expect(await batonErrorCode { _ = try await store.current(key: "k") } == .storeUnavailable)
            #expect(await batonErrorCode { _ = try await driver.renew(lease, ttl: .seconds(60)) } == .storeUnavailable)
            // The lease was not released: it expires.
            try await LeaseStore(try SQLiteLeaseStore(path: path)).withRunning { other throws in
                #expect(try await other.current(key: "k")?.holder == "h")
            }
        }
    }

    @Test func aGracefulShutdownEndsRunAndClosesTheFile() async throws {
        try await withDatabase { path throws in
            try await testGracefulShutdown { trigger in
                let driver = try SQLiteLeaseStore(path: path)
                let run = Task { try await driver.run() }
                _ = try await driver.acquire(key: "k", holder: "h", ttl: .seconds(60), metadata: nil)
                #expect(!openDescriptors(of: path).isEmpty)
                trigger.triggerGracefulShutdown()
                try await run.value
                #expect(openDescriptors(of: path) == [])
                #expect(await batonErrorCode { _ = try await driver.current(key: "k") } == .storeUnavailable)
            }
        }
    }

    @Test func runFailsClearlyWhenTheFileCannotBeOpened() async throws {
        let path = "/nonexistent-baton-directory/baton.db"
        let driver = try SQLiteLeaseStore(path: path)
        let waiting = Task { try await driver.current(key: "k") }
        while driver.queuedOperations < 1 { try await Task.sleep(for: .milliseconds(1)) }
        do {
            try await driver.run()
            Issue.record("opened \(path)")
        } catch let error as BatonError {
            #expect(error.code == .storeUnavailable)
            #expect(error.message.contains(path))
        }
        #expect(await batonErrorCode { _ = try await waiting.value } == .storeUnavailable)
        #expect(await batonErrorCode { _ = try await driver.current(key: "k") } == .storeUnavailable)
    }

    @Test func aClockWithoutAnEpochIsRefusedByRun() async throws {
        try await withDatabase { path throws in
            let driver = try SQLiteLeaseStore(
                path: path, clock: ManualExpiryClock(manual: ManualClock(), epochName: nil))
            #expect(await batonErrorCode { try await driver.run() } == .storeUnavailable)
        }
    }

    @Test func aStoreRunsOnce() async throws {
        try await withDatabase { path throws in
            let driver = try SQLiteLeaseStore(path: path)
            let run = Task { try await driver.run() }
            _ = try await driver.current(key: "k")
            #expect(await batonErrorCode { try await driver.run() } == .invalidArgument)
            run.cancel()
            try await run.value
        }
    }

    @Test func expiryFollowsTheInjectedClock() async throws {
        try await withDatabase { path throws in
            let clock = ManualClock()
            let expiry = ManualExpiryClock(manual: clock)
            let a = LeaseStore(try SQLiteLeaseStore(path: path, clock: expiry))
            let b = LeaseStore(try SQLiteLeaseStore(path: path, clock: expiry))
            try await a.withRunning { a in
                try await b.withRunning { b in
                    let first = try #require(try await a.acquire(key: "k", holder: "a", ttl: .seconds(10)).lease)
                    try await b.heartbeat(group: "g", member: "m", ttl: .seconds(10))
                    let recorder = ChangeRecorder(try b.changes(key: "k"))
                    defer { recorder.cancel() }
                    #expect(try await recorder.wait { $0.count == 1 })
                    await clock.waitForSleepers(atLeast: 1)

                    _ = clock.advance(by: .seconds(9))
                    #expect(try await b.current(key: "k")?.remaining == .seconds(1))
                    #expect(try await a.members(group: "g") == ["m"])

                    _ = clock.advance(by: .seconds(1))
                    #expect(try await b.current(key: "k") == nil)
                    #expect(try await a.members(group: "g") == [])
                    // The subscription's timer runs on the same clock: it sees the expiry without a write.
                    _ = clock.advance(by: .milliseconds(1))
                    #expect(try await recorder.wait { $0.count == 2 && $0.last! == nil })

                    let second = try #require(try await b.acquire(key: "k", holder: "b", ttl: .seconds(10)).lease)
                    #expect(second.token == first.token + 1)
                    #expect(await batonErrorCode { _ = try await a.renew(first, ttl: .seconds(10)) } == .lost)
                }
            }
        }
    }

    /// Processes starting together on a fresh file all get it set up: the locks SQLite refuses at once while
    /// another connection switches the file to WAL are waited out, not reported as a timeout.
    @Test func storesSettingUpAFreshFileAtOnceAllStart() async throws {
        var failures: [String] = []
        for _ in 0..<100 {
            try await withDatabase { path throws in
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for _ in 0..<3 {
                        group.addTask {
                            let store = LeaseStore(try SQLiteLeaseStore(path: path))
                            do {
                                try await store.withRunning { _ = try await $0.current(key: "k") }
                                return nil
                            } catch {
                                return "\(error)"
                            }
                        }
                    }
                    for try await failure in group { failures += failure.map { [$0] } ?? [] }
                }
            }
        }
        #expect(failures == [])
    }
}
