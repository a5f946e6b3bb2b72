import Baton
import BatonEtcd
import BatonPostgres
import BatonRedis
import BatonS3
import BatonSQLite

/// Opens the store a ``Baton/StoreURL`` names, whichever of Baton's stores it is: the one place where a URL
/// becomes a store, used by the `baton` tool, the benchmarks and the examples alike.
///
/// ```swift
/// let store = try await LeaseStores.open("redis://127.0.0.1:6379")
/// defer { Task { try? await store.close() } }
/// ```
///
/// | URL | store |
/// |---|---|
/// | `memory:` | ``Baton/MemoryLeaseStore`` |
/// | `sqlite:PATH` | ``BatonSQLite/SQLiteLeaseStore`` |
/// | `postgres://...`, `postgresql://...` | ``BatonPostgres/PostgresLeaseStore`` |
/// | `redis://...`, `rediss://...` (several hosts: Redlock) | ``BatonRedis/RedisLeaseStore`` |
/// | `etcd://...`, `etcds://...` | ``BatonEtcd/EtcdLeaseStore`` |
/// | `s3://bucket/prefix/?endpoint=URL&region=R` | ``BatonS3/S3LeaseStore`` |
///
/// Each store is opened with its default configuration. A store that needs other settings (a Redis key prefix,
/// an SQLite busy timeout, S3 credentials in code) is made with its own initializer instead.
public enum LeaseStores {
    /// Opens the store `url` names. The caller closes it (``Baton/LeaseStore/close()``).
    ///
    /// SQLite and PostgreSQL open their file or connect here; Redis, etcd and S3 connect on the first
    /// operation, so an unreachable server is reported by that operation.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a URL its store refuses (a Redis path that is not a
    ///   database number, an unknown query item); whatever the store throws when it cannot be opened
    ///   (`storeUnavailable`, `unauthorized`, `timeout`).
    public static func open(_ url: StoreURL) async throws -> LeaseStore {
        switch url.kind {
        case .memory: return LeaseStore(MemoryLeaseStore())
        case .sqlite: return LeaseStore(try SQLiteLeaseStore(path: url.path))
        case .postgres: return LeaseStore(try await PostgresLeaseStore(url: url))
        case .redis: return LeaseStore(try RedisLeaseStore(url: url))
        case .etcd: return LeaseStore(try EtcdLeaseStore(url: url))
        // Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
        case .s3: return LeaseStore(try S3LeaseStore(url: url))
        default: throw BatonError.invalidArgument("no store is built for \(url.kind) URLs: \(url)")
        }
    }

    /// Parses `string` as a ``Baton/StoreURL`` and opens its store, as the `StoreURL` overload does.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a malformed URL or an unknown scheme (the message
    ///   lists the known ones and never shows a password); otherwise what the `StoreURL` overload throws.
    public static func open(_ string: String) async throws -> LeaseStore {
        try await open(StoreURL(string))
    }
}
