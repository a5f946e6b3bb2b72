import Baton
import BatonEtcd
import BatonPostgres
import BatonRedis
import BatonS3
import BatonSQLite

/// Opens the store a ``Baton/StoreURL`` names, whichever of Baton's stores it is: the one place that lists the
/// stores this package builds, used by the `baton` tool, the benchmarks and the examples alike.
///
/// ```swift
/// let store = try await LeaseStores.open("redis://127.0.0.1:6379")
/// let elector = try LeaderElector(store: store, key: "jobs/cleaner", holder: "host-a")
/// let group = ServiceGroup(services: [store, elector], logger: logger)  // the store runs first, stops last
/// ```
///
/// Each store declares its own schemes and reads its own URL (``Baton/URLOpenableStore``):
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
/// an SQLite busy timeout, S3 credentials in code) is made with its own initializer and wrapped in a
/// ``Baton/LeaseStore`` instead.
///
/// ## Moving over from closing stores
///
/// `open` used to return a store that was already connected and that the caller closed with `close()`. It now
/// returns a ``Baton/LeaseStore`` that is not yet running: run it — add it to your `ServiceGroup` before the
/// electors that use it, or wrap the code that uses it in ``Baton/LeaseStore/withRunning(_:)`` — and stop it by
/// cancelling or shutting down that group instead of calling `close()`. A call made without `run()` fails with
/// a `storeUnavailable` error that says so.
public enum LeaseStores {
    /// The stores this package builds, in the order their schemes are listed in messages.
    public static let kinds: [any URLOpenableStore.Type] = [
        MemoryLeaseStore.self, SQLiteLeaseStore.self, RedisLeaseStore.self, EtcdLeaseStore.self,
        PostgresLeaseStore.self, S3LeaseStore.self,
    ]

    /// `sqlite:baton.db`, the store used when none is named: the SQLite file `baton.db` in the working directory.
    public static let defaultURL = "sqlite:baton.db"

    /// Every scheme of ``kinds``.
    public static var schemes: [String] { kinds.flatMap { $0.urlSchemes } }

    /// The store kind that declared `scheme`.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a scheme no store declared, listing the known ones.
    public static func kind(for scheme: String) throws(BatonError) -> any URLOpenableStore.Type {
        guard let kind = kinds.first(where: { $0.urlSchemes.contains(scheme) }) else {
            throw .invalidArgument(
                "unknown store URL scheme \"\(scheme)\"; known schemes: " + schemes.joined(separator: ", "))
        }
        return kind
    }

    /// Opens the store `url` names: a ``Baton/LeaseStore`` over that store's driver, not yet running.
    ///
    /// Nothing is connected or opened until the store runs, so an unreachable server or a file that cannot be
    /// opened is reported by `run()` or by the first operation.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for an unknown scheme (the message lists the known ones)
    ///   or a URL its store refuses (a Redis path that is not a database number, an unknown query item);
    ///   `unauthorized` when credentials the store needs are missing (S3).
    public static func open(_ url: StoreURL) async throws -> LeaseStore {
        LeaseStore(try await kind(for: url.scheme).open(url))
    }

    /// Opens the store `url` names for a process that campaigns for a few keys (`baton campaign`, `baton run`):
    /// as ``open(_:)-(StoreURL)``, except that a store that would open a pool of connections opens as few as it can
    /// where the URL does not say otherwise (PostgreSQL: one connection in all, see
    /// ``BatonPostgres/PostgresLeaseStore/Configuration/maximumConnections``; Redis: one connection for commands
    /// and one for pub/sub per server, see ``BatonRedis/RedisLeaseStore/Configuration/poolSize``), so that many
    /// such processes fit in a server's connection limit, and each probes only the connections it needs.
    public static func openForCandidate(_ url: StoreURL) async throws -> LeaseStore {
        if PostgresLeaseStore.urlSchemes.contains(url.scheme) {
            let configuration = PostgresLeaseStore.Configuration(
                maximumConnections: PostgresLeaseStore.Configuration.candidateConnections)
            return LeaseStore(try PostgresLeaseStore(url: url, configuration: configuration))
        }
        if RedisLeaseStore.urlSchemes.contains(url.scheme) {
            var configuration = RedisLeaseStore.Configuration()
            configuration.poolSize = RedisLeaseStore.Configuration.candidatePoolSize
            return LeaseStore(try RedisLeaseStore(url: url, configuration: configuration))
        }
        return try await open(url)
    }

    /// Parses `string` as a ``Baton/StoreURL`` and opens its store, as the `StoreURL` overload does.
    /// - Throws: ``Baton/BatonError`` `invalidArgument` for a malformed URL or an unknown scheme (the message
    ///   lists the known ones and never shows a password); otherwise what the `StoreURL` overload throws.
    public static func open(_ string: String) async throws -> LeaseStore {
        try await open(StoreURL(string))
    }
}
