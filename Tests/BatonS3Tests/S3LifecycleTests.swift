import AsyncHTTPClient
import Baton
import BatonTestKit
import Logging
import NIOCore
import ServiceLifecycle
import Testing

@testable import BatonS3

/// What runs where: nothing before `run()`, the HTTP client shut down and the polls ended after it.
@Suite("S3 store lifecycle")
struct S3LifecycleTests {
    /// A call through the front before `run()` fails with `storeUnavailable` saying that `run()` is missing.
    @Test func callBeforeRunIsRefused() async throws {
        guard let driver = try S3TestServer.store() else { return }
        let store = LeaseStore(driver, configuration: .init(startTimeout: .milliseconds(50)))
        await #expect {
            _ = try await store.current(key: unique("early"))
        } throws: { error in
            let error = error as? BatonError
            return error?.code == .storeUnavailable && error?.message.contains("run()") == true
        }
    }

    /// Cancelling `run()` shuts its HTTP client down, ends the change feeds with the store's error, and later
    /// calls fail, through the front and on the driver itself.
    @Test func cancellingRunShutsTheClientDown() async throws {
        guard let driver = try S3TestServer.store() else { return }
        let store = LeaseStore(driver)
        let running = Task { try await store.run() }
        let key = unique("lifecycle")
        var changes = try store.changes(key: key).makeAsyncIterator()
        #expect(try await changes.next() == .some(nil))
        _ = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(5)).lease)
        let http = try await driver.session.client()

        running.cancel()
        try await running.value
        // The feed may still deliver the term it read before; then it ends with the store's error.
        await #expect {
            while try await changes.next() != nil {}
        } throws: { error in
            (error as? BatonError)?.code == .storeUnavailable
        }
        await #expect {
            _ = try await http.execute(HTTPClientRequest(url: "http://127.0.0.1:1/"), timeout: .seconds(1))
        } throws: { error in
            (error as? HTTPClientError) == .alreadyShutdown
        }
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

    /// In a `ServiceGroup`, a graceful shutdown ends the store's `run()`, which shuts its HTTP client down.
    @Test func gracefulShutdownEndsRun() async throws {
        guard let driver = try S3TestServer.store() else { return }
        let store = LeaseStore(driver)
        let group = ServiceGroup(services: [store], logger: Logger(label: "s3-lifecycle-test"))
        let running = Task { try await group.run() }
        _ = try await store.current(key: unique("graceful"))
        let http = try await driver.session.client()
        await group.triggerGracefulShutdown()
        try await running.value
        await #expect {
            _ = try await http.execute(HTTPClientRequest(url: "http://127.0.0.1:1/"), timeout: .seconds(1))
        } throws: { error in
            (error as? HTTPClientError) == .alreadyShutdown
        }
    }
}
