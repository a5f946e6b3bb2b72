import Baton
import BatonTestKit
import Testing

@testable import BatonEtcd

/// The store runs only in `run()`: nothing before it, and nothing after it.
@Suite struct EtcdLifecycleTests {
    /// Making a store opens nothing, so a request before `run()` cannot reach etcd: the front waits for the run
    /// (here on its own clock), then says the store is not running.
    @Test func aRequestBeforeRunFailsWithAClearError() async throws {
        let driver = try EtcdLeaseStore("etcd://127.0.0.1:1")
        let clock = ManualClock()
        let store = LeaseStore(driver, clock: clock)
        let attempt = Task { try await store.current(key: "k") }
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(1))
        await #expect {
            _ = try await attempt.value
        } throws: { error in
            let error = error as? BatonError
            return error?.code == .storeUnavailable && error!.message.contains("run()")
        }
    }

    /// Cancelling `run()` closes the store: the waiting candidate that asked through it leaves the queue at once
    /// (its lease is revoked, not left to expire), its change feed ends with `storeUnavailable`, its client is closed, and later calls
    /// fail with `storeUnavailable`.
    @Test func cancellingRunClosesTheStore() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        let store = try EtcdLeaseStore(url)
        let key = unique("close")
        try await withRunning([leaderStore]) {
            let lease = try #require(
                try await leaderStore.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            let running = Task { try await LeaseStore(store).run() }
            #expect(
                try await store.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true).lease
                    == nil)
            var feed = try store.changes(key: key).makeAsyncIterator()
            #expect(try await feed.next()??.holder == "a")
            #expect(try await leaderStore.readElection(key).count == 2)

            running.cancel()
            try await running.value
            #expect(try await leaderStore.readElection(key).map(\.holder) == ["a"], "b's key left with its store")
            await #expect {
                while try await feed.next() != nil {}
            } throws: { error in
                (error as? BatonError)?.code == .storeUnavailable
            }
            #expect(store.client.isClosed)
            await #expect {
                _ = try await store.current(key: key)
            } throws: { error in
                (error as? BatonError)?.code == .storeUnavailable
            }
            #expect(throws: BatonError.self) { _ = try store.changes(key: key) }
            try await leaderStore.release(lease)
        }
    }

    /// A store runs once.
    @Test func aStoreRunsOnce() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        try await withRunning([store]) {}
        await #expect(throws: BatonError.self) { try await store.run() }
    }
}
