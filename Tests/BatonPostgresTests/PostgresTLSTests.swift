import Baton
import BatonTestKit
import Testing

@testable import BatonPostgres

/// TLS and credentials from the store URL: against the test server, which `scripts/test` starts with TLS on and
/// a self-signed certificate for 127.0.0.1 (`BATON_TEST_POSTGRES_TLS_ROOT`), and as parsing alone.
@Suite struct PostgresTLSTests {
    @Test func verifyFullWithTheServersRootEncryptsEveryConnection() async throws {
        guard let url = try TestServer.url(), let root = try TestServer.variable("BATON_TEST_POSTGRES_TLS_ROOT")
        else { return }
        let name = unique("baton-tls")
        let store = try PostgresLeaseStore(
            url: try StoreURL("\(url)?sslmode=verify-full&sslrootcert=\(root)&application_name=\(name)")
        )
        try await using(store) { store in
            let key = unique("tls")
            let lease = try #require(
                try await store.acquire(key: key, holder: "a", ttl: .seconds(30), metadata: nil).lease)
            let changes = ChangeRecorder(try store.changes(key: key))
            defer { changes.cancel() }
            try #require(try await changes.wait { $0.last??.holder == "a" }, "the holder")
            // The store's one connection, on which it listens and runs requests, is encrypted.
            try await waitUntil("an encrypted session") {
                let (count, encrypted) = try await TestServer.sessions(named: name, url: url)
                #expect(encrypted, "\(count) sessions named \(name), not all encrypted")
                return count >= 1
            }
            try await store.release(lease)
        }
    }

    @Test func requireEncryptsWithoutCheckingAndVerifyFullRefusesAnUnknownCertificate() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-tls-require")
        let store = try PostgresLeaseStore(url: try StoreURL("\(url)?sslmode=require&application_name=\(name)"))
        try await using(store) { store in
            _ = try await store.current(key: unique("tls"))
            let (count, encrypted) = try await TestServer.sessions(named: name, url: url)
            #expect(count >= 1 && encrypted)
        }
        // The self-signed certificate is not among the system's trust roots.
        let unverified = try PostgresLeaseStore(url: try StoreURL("\(url)?sslmode=verify-full"))
        #expect(await batonErrorCode { try await unverified.run() } == .storeUnavailable)
    }

    @Test func disableConnectsInTheClear() async throws {
        guard let url = try TestServer.url() else { return }
        let name = unique("baton-plain")
        let store = try PostgresLeaseStore(url: try StoreURL("\(url)?sslmode=disable&application_name=\(name)"))
        try await using(store) { store in
            _ = try await store.current(key: unique("plain"))
            let (count, encrypted) = try await TestServer.sessions(named: name, url: url)
            #expect(count >= 1 && !encrypted)
        }
    }

    @Test func settingsFromTheURL() throws {
        let settings = try PostgresConnectionSettings(
            StoreURL("postgresql://app:p%40ss@db.example:6543/elections?sslmode=verify-ca&schema=baton")
        )
        #expect(settings.host == "db.example" && settings.port == 6543)
        #expect(settings.user == "app" && settings.password == "p@ss" && settings.database == "elections")
        #expect(settings.sslMode == .verifyCA && settings.schema == "baton")
        #expect(settings.redactedURL == "postgresql://app:***@db.example:6543/elections?sslmode=verify-ca&schema=baton")
        let defaults = try PostgresConnectionSettings(StoreURL("postgres://db"))
        #expect(defaults.port == 5432 && defaults.user == "postgres" && defaults.database == nil)
        #expect(defaults.sslMode == .prefer && defaults.password == nil && defaults.maximumConnections == nil)
        let pooled = try PostgresLeaseStore(url: StoreURL("postgres://db/x?pool_max_conns=50"))
        #expect(pooled.configuration.maximumConnections == 50 && pooled.configuration.minimumConnections == 0)
        let kept = try PostgresLeaseStore(url: StoreURL("postgres://db/x?pool_max_conns=50&pool_min_conns=49"))
        #expect(kept.configuration.minimumConnections == 49)
        for bad in ["pool_min_conns=10", "pool_max_conns=5&pool_min_conns=5", "pool_max_conns=1&pool_min_conns=1"] {
            let error = #expect(throws: BatonError.self, "\(bad)") {
                try PostgresLeaseStore(url: StoreURL("postgres://db/x?\(bad)"))
            }
            #expect(error?.message.contains("pool_min_conns") == true, "\(bad): \(String(describing: error))")
        }

        for bad in [
            "postgres://db/x?sslmode=sometimes", "postgres://db/x?colour=blue", "postgres://db/x?sslcert=/c.pem",
            "postgres://db/x?schema=Bad-Name", "postgres://a:1,b:2/x", "postgres://db/x/y",
            "postgres://db/x?sslmode=disable&sslrootcert=/r.pem", "postgres://db/x?sslmode=require&sslmode=disable",
            "postgres://db/x?pool_max_conns=0", "postgres://db/x?pool_max_conns=1001",
            "postgres://db/x?pool_max_conns=", "postgres://db/x?pool_min_conns=-1", "postgres://db/x?pool_min_conns=x",
        ] {
            #expect(throws: BatonError.self, "\(bad)") { try PostgresConnectionSettings(StoreURL(bad)) }
        }
        let secret = "postgres://u:topsecret@db/x?sslmode=nope"
        do {
            _ = try PostgresConnectionSettings(StoreURL(secret))
        } catch {
            #expect(!"\(error)".contains("topsecret"))
        }
    }
}
