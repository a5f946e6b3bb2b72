import Baton
import BatonRedis
import BatonTestKit
import Foundation
import Testing

/// TLS, passwords and the client's errors against real servers (`BATON_TEST_REDISS_URL`: TLS with a password,
/// trusted through `?ca_file=`).
@Suite struct RedisConnectionTests {
    /// Leases and pushed changes over TLS with a password.
    @Test func tlsWithPassword() async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDISS_URL") else { return }
        try await withRedisStore(url) { store, _ in
            let key = unique("tls")
            let recorder = ChangeRecorder(try store.changes(key: key))
            #expect(try await recorder.wait { $0 == [nil] })
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(30)).lease)
            #expect(try await recorder.wait { $0.last??.token == lease.token })
            try await store.release(lease)
            #expect(try await recorder.wait { $0.count == 3 && $0.last == .some(nil) })
            recorder.cancel()
        }
    }

    /// A wrong password is `unauthorized`, and neither the password given nor the right one is in the error.
    @Test func wrongPasswordIsUnauthorizedAndNotPrinted() async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDISS_URL") else { return }
        let wrong = url.replacingOccurrences(of: ":baton-test-secret@", with: ":not-the-password@")
        do {
            // The call fails, or the store's run() ends first with the same error.
            try await withRedisStore(wrong) { store, _ in _ = try await store.current(key: "k") }
            Issue.record("a wrong password was accepted")
        } catch let error as BatonError {
            #expect(error.code == .unauthorized)
            let printed = "\(error) \(String(reflecting: error))"
            #expect(!printed.contains("not-the-password") && !printed.contains("baton-test-secret"), "\(printed)")
        }
    }

    /// Credentials the server refuses end the store's run() with `unauthorized`, without any call.
    @Test func refusedCredentialsEndRun() async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDISS_URL") else { return }
        let wrong = url.replacingOccurrences(of: ":baton-test-secret@", with: ":not-the-password@")
        let store = LeaseStore(try RedisLeaseStore(wrong))
        await #expect {
            try await store.run()
        } throws: { error in
            (error as? BatonError)?.code == .unauthorized
        }
    }

    /// A server certificate from an authority the client does not trust is refused: `storeUnavailable`.
    @Test func untrustedCertificateIsRefused() async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDISS_URL") else { return }
        let untrusted = String(url.prefix { $0 != "?" })
        try await withRedisStore(untrusted) { store, _ in
            await #expect {
                _ = try await store.current(key: "k")
            } throws: { error in
                (error as? BatonError)?.code == .storeUnavailable
            }
        }
    }

    /// Nothing listening: `storeUnavailable`, at once again while the client backs off.
    @Test func unreachableServer() async throws {
        try await withRedisStore("redis://127.0.0.1:1") { store, _ in
            for _ in 0..<3 {
                await #expect {
                    _ = try await store.acquire(key: "k", holder: "h", ttl: .seconds(1))
                } throws: { error in
                    (error as? BatonError)?.code == .storeUnavailable
                }
            }
        }
    }

    /// URLs that are not for this store, or carry what it does not take, are refused before any I/O.
    @Test(arguments: ["sqlite:x.db", "redis://h:1/x", "redis://h:1?foo=bar", "redis://h:1?ca_file=/x"])
    func badURLs(_ url: String) {
        #expect {
            _ = try RedisLeaseStore(url)
        } throws: { error in
            (error as? BatonError)?.code == .invalidArgument
        }
    }
}
