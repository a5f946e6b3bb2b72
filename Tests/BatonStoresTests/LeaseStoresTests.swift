import Baton
import BatonPostgres
import BatonRedis
import BatonS3
import BatonSQLite
import BatonStores
import Foundation
import Testing

@Suite("Opening a store by URL")
struct LeaseStoresTests {
    @Test("an unknown scheme is refused with the known ones listed")
    func unknownScheme() async throws {
        let error = try await #require(throws: BatonError.self) { try await LeaseStores.open("mysql://db:3306") }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("unknown store URL scheme"))
        #expect(error.message.contains("memory, sqlite, redis, rediss, etcd, etcds, postgres, postgresql, s3"))
    }

    @Test("a malformed URL is refused without showing its password")
    func malformedURL() async throws {
        let error = try await #require(throws: BatonError.self) {
            try await LeaseStores.open("redis://user:hunter2@db:notaport")
        }
        #expect(error.code == .invalidArgument)
        #expect(!error.message.contains("hunter2"))
        #expect(!"\(error)".contains("hunter2"))
    }

    @Test("a URL its store refuses is refused before any I/O")
    func refusedByTheStore() async throws {
        let error = try await #require(throws: BatonError.self) { try await LeaseStores.open("redis://db:6379/x") }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains("database"))
    }

    @Test(
        "each scheme opens its store (those that connect on first use, so no server is needed)",
        arguments: [
            ("memory:", "MemoryLeaseStore"),
            ("redis://127.0.0.1:1", "RedisLeaseStore"),
            ("rediss://127.0.0.1:1", "RedisLeaseStore"),
            ("redis://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "RedisLeaseStore"),
            ("etcd://127.0.0.1:1", "EtcdLeaseStore"),
        ]
    )
    func opensTheStoreItsSchemeNames(url: String, type: String) async throws {
        let store = try await LeaseStores.open(url)
        #expect(String(describing: Swift.type(of: store.driver)) == type)
        try await store.withRunning { _ in }
    }

    @Test("sqlite:PATH opens the SQLite file")
    func sqlite() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("baton-stores-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("baton.db").path
        let store = try await LeaseStores.open(StoreURL("sqlite:\(path)"))
        let sqlite = try #require(store.driver as? SQLiteLeaseStore)
        #expect(sqlite.path == path)
        let result = try await store.withRunning { store in
            try await store.acquire(key: "k", holder: "h", ttl: .seconds(5), metadata: nil)
        }
        #expect(result.lease != nil)
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test("s3:// opens the S3 store (or says which credentials are missing)")
    func s3() async throws {
        let url = "s3://bucket/baton/?endpoint=http://127.0.0.1:1&region=us-east-1"
        if ProcessInfo.processInfo.environment["AWS_ACCESS_KEY_ID"] == nil {
            let error = try await #require(throws: BatonError.self) { try await LeaseStores.open(url) }
            #expect(error.code == .unauthorized)
            #expect(error.message.contains("AWS_ACCESS_KEY_ID"))
        } else {
            let store = try await LeaseStores.open(url)
            #expect(store.driver is S3LeaseStore)
        }
    }

    @Test("postgres:// connects when the store runs: a server that is not there is a store error, not a bad URL")
    func postgres() async throws {
        let store = try await LeaseStores.open("postgres://baton:secret@127.0.0.1:1/baton")
        #expect(store.driver is PostgresLeaseStore)
        let error = try await #require(throws: BatonError.self) {
            try await store.withRunning { store in _ = try await store.current(key: "k") }
        }
        #expect(error.code == .storeUnavailable || error.code == .timeout)
        #expect(!"\(error)".contains("secret"))
        #expect(!String(reflecting: error).contains("secret"))
    }

    @Test("a candidate process's store opens as few connections as it can: PostgreSQL one, Redis one for commands")
    func candidateStores() async throws {
        let postgres = try await LeaseStores.openForCandidate(StoreURL("postgres://baton@127.0.0.1:1/baton"))
        #expect((postgres.driver as? PostgresLeaseStore)?.configuration.maximumConnections == 1)
        let redis = try await LeaseStores.openForCandidate(StoreURL("redis://127.0.0.1:1"))
        #expect((redis.driver as? RedisLeaseStore)?.configuration.poolSize == 1)
        // A service (`LeaseStores.open`) keeps the pools.
        let service = try await LeaseStores.open("redis://127.0.0.1:1")
        #expect((service.driver as? RedisLeaseStore)?.configuration.poolSize == 4)
        let sqlite = try await LeaseStores.openForCandidate(StoreURL("sqlite:/tmp/baton-candidate-\(UUID()).db"))
        #expect(sqlite.driver is SQLiteLeaseStore)
    }
}

/// What each store refuses in its URL, checked by the store that declared the scheme before any I/O.
@Suite("store URLs")
struct StoreURLRulesTests {
    @Test("the default is sqlite:baton.db")
    func defaultStore() throws {
        #expect(LeaseStores.defaultURL == "sqlite:baton.db")
        let url = try StoreURL(LeaseStores.defaultURL)
        #expect(url.scheme == "sqlite" && url.path == "baton.db" && url.description == "sqlite:baton.db")
    }

    @Test("every scheme is declared by exactly one store")
    func schemesAreUnique() {
        let schemes = LeaseStores.schemes
        #expect(Set(schemes).count == schemes.count)
        #expect(schemes == ["memory", "sqlite", "redis", "rediss", "etcd", "etcds", "postgres", "postgresql", "s3"])
    }

    @Test(
        "a URL its store refuses is an invalidArgument error that says what is wrong and never shows the password",
        arguments: [
            ("mysql://u:sekret@h", #"unknown store URL scheme "mysql"; known schemes: memory, sqlite, redis, rediss"#),
            ("http://h", "known schemes: memory, sqlite, redis, rediss, etcd, etcds, postgres, postgresql, s3"),
            ("memory:x", "takes nothing after the scheme"),
            ("sqlite:", "empty path"),
            ("sqlite://", "empty path"),
            ("sqlite:?mode=ro", "empty path"),
            ("sqlite:b.db?mode=ro", "takes no query item mode"),
            ("sqlite://host/baton.db", "names a file, not a host"),
            ("sqlite:a%00b", "control character"),
            ("redis:h:6379", "needs // and a host"),
            ("redis://", "needs // and a host"),
            ("redis://:sekret@", "needs // and a host"),
            ("redis:///0", "needs // and a host"),
            ("redis://h:1/abc", "is a database number"),
            ("redis://h:1/-1", "is a database number"),
            ("etcd://h:2379/prefix", "has no path"),
            ("etcd:h", "needs // and a host"),
            ("s3://bucket:9000/p/", "names one bucket, without a port"),
            ("s3://b1,b2/p/", "names one bucket, without a port"),
            ("s3://AKIA:sekret@bucket/p/", "carries no credentials"),
            ("postgres:h", "needs // and a host"),
        ]
    )
    func refused(text: String, expected: String) async {
        let error = await #expect(throws: BatonError.self) { _ = try await LeaseStores.open(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains("sek") == false, "\(error?.message ?? "")")
    }
}
