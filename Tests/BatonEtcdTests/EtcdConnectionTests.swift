import Baton
import BatonEtcd
import BatonTestKit
import Testing

/// URLs, TLS, auth and failover between endpoints.
@Suite struct EtcdConnectionTests {
    @Test func badURLsAreRefusedWithClearErrors() throws {
        for (url, fragment) in [
            ("redis://127.0.0.1:6379", "not an etcd"),
            ("etcd://127.0.0.1:2379?ca_file=/x", "ca_file"),
            ("etcd://127.0.0.1:2379?timeout=3", "no query item timeout"),
        ] {
            #expect {
                _ = try EtcdLeaseStore(url)
            } throws: { error in
                let error = error as? BatonError
                return error?.code == .invalidArgument && error!.message.contains(fragment)
            }
        }
    }

    /// TLS with a private certificate authority and user/password auth; a wrong password is `unauthorized`,
    /// and the password never appears in the error.
    @Test func tlsAndAuth() async throws {
        guard let url = try EtcdTestServer.value("BATON_TEST_ETCDS_URL"),
            let badURL = try EtcdTestServer.value("BATON_TEST_ETCDS_BAD_PASSWORD_URL")
        else { return }
        let store = try EtcdLeaseStore(url)
        let key = unique("tls")
        let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(10), metadata: nil).lease)
        #expect(try await store.current(key: key)?.holder == "a")
        try await store.release(lease)
        #expect(
            try await store.claim(
                system: unique("tls"), round: "r", candidate: "a", retention: RoundElection.defaultRetention) == .won)
        try await store.close()

        let refused = try EtcdLeaseStore(badURL)
        await #expect {
            _ = try await refused.current(key: key)
        } throws: { error in
            let error = error as? BatonError
            return error?.code == .unauthorized && !"\(error!)".contains("wrong")
                && !String(reflecting: error!).contains("wrong")
        }
        try await refused.close()
    }

    /// The first endpoint of the URL is down: requests go to the next one.
    /// A busy connection stays up: etcd answers nearly every request with a PING (bandwidth estimation), and the
    /// HTTP/2 client closed a connection after 200 PINGs in 30 s, failing every stream on it. 300 renews in a row
    /// (each a keep-alive on the shared stream and a transaction), in plain text and over TLS.
    @Test func aBusyConnectionIsNotDropped() async throws {
        for variable in ["BATON_TEST_ETCD_URL", "BATON_TEST_ETCDS_URL"] {
            guard let url = try EtcdTestServer.value(variable) else { return }
            let store = try EtcdLeaseStore(url)
            var lease = try #require(
                try await store.acquire(key: unique("busy"), holder: "a", ttl: .seconds(10), metadata: nil).lease)
            for round in 0..<300 {
                do {
                    lease = try await store.renew(lease, ttl: .seconds(10))
                } catch {
                    Issue.record("renew \(round) over \(variable) failed: \(error)")
                    break
                }
            }
            try await store.release(lease)
            try await store.close()
        }
    }

    @Test func failsOverToTheNextEndpoint() async throws {
        guard let url = try EtcdTestServer.value(), let live = EtcdTestServer.endpoint(of: url) else { return }
        let dead = try EtcdRestartTests.Server.freePort()
        let store = try EtcdLeaseStore("etcd://127.0.0.1:\(dead),\(live)")
        let key = unique("failover")
        let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(10), metadata: nil).lease)
        #expect(try await store.current(key: key)?.token == lease.token)
        try await store.release(lease)
        try await store.close()
    }
}
