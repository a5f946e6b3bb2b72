import Baton
import BatonTestKit
import Logging
import ServiceLifecycle
import Testing

@testable import BatonRedis

/// What runs where: nothing before `run()`, everything closed after it.
@Suite("Redis store lifecycle")
struct RedisLifecycleTests {
    /// A call through the front before `run()` fails with `storeUnavailable` saying that `run()` is missing.
    @Test func callBeforeRunIsRefused() async throws {
        guard let url = try RedisTestServer.url() else { return }
        let driver = try RedisLeaseStore(url)
        let store = LeaseStore(driver, configuration: .init(startTimeout: .milliseconds(50)))
        await #expect {
            _ = try await store.current(key: unique("early"))
        } throws: { error in
            let error = error as? BatonError
            return error?.code == .storeUnavailable && error?.message.contains("run()") == true
        }
        #expect(driver.openConnections.isEmpty)
    }

    /// Cancelling `run()` closes every connection (commands' and pub/sub), ends the change feeds with the
    /// store's error, and later calls fail, through the front and on the driver itself.
    @Test func cancellingRunClosesConnections() async throws {
        guard let url = try RedisTestServer.url() else { return }
        let driver = try RedisLeaseStore(url)
        let store = LeaseStore(driver)
        let running = Task { try await store.run() }
        let key = unique("lifecycle")
        let recorder = ChangeRecorder(try store.changes(key: key))
        #expect(try await recorder.wait { $0 == [nil] })
        let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(5)).lease)
        #expect(try await recorder.wait { $0.last??.token == lease.token })
        let connections = driver.openConnections
        // At least one command connection and the pub/sub connection.
        #expect(connections.count >= 2)

        running.cancel()
        try await running.value
        #expect(connections.allSatisfy { !$0.isActive })
        #expect(driver.openConnections.isEmpty)
        #expect(try await recorder.wait { _ in recorder.finished })
        await #expect {
            _ = try await store.current(key: key)
        } throws: { error in
            (error as? BatonError)?.code == .storeUnavailable
        }
        await #expect {
            _ = try await driver.current(key: key)
        } throws: { error in
            (error as? BatonError)?.code == .storeUnavailable
        }
    }

    /// In a `ServiceGroup`, a graceful shutdown ends the store's `run()`, which closes its connections.
    @Test func gracefulShutdownEndsRun() async throws {
        guard let url = try RedisTestServer.url() else { return }
        let driver = try RedisLeaseStore(url)
        let store = LeaseStore(driver)
        let group = ServiceGroup(services: [store], logger: Logger(label: "redis-lifecycle-test"))
        let running = Task { try await group.run() }
        _ = try await store.current(key: unique("graceful"))
        let connections = driver.openConnections
        #expect(!connections.isEmpty)
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(connections.allSatisfy { !$0.isActive })
        #expect(driver.openConnections.isEmpty)
    }
}
