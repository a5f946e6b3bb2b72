import Baton
import BatonEtcd  // etcd store
import BatonPostgres
import BatonRedis  // Redis store
import BatonS3  // S3 store
import BatonSQLite

/// Opens the store a ``StoreURL`` names, with the stores this build contains.
enum StoreFactory {
    /// Opens the store at `url`. The caller closes it.
    /// - Throws: ``BatonError`` `invalidArgument` for a store this build does not contain; whatever the store
    ///   throws when it cannot be opened (`storeUnavailable`, `unauthorized`, ...).
    static func open(_ url: StoreURL) async throws -> any LeaseStore {
        switch url.kind {
        case .memory:
            return MemoryLeaseStore()
        case .sqlite:
            return try await SQLiteLeaseStore(path: url.path)
        case .postgres:
            return try await PostgresLeaseStore(url: url)
        case .redis:  // Redis store: one node, or Redlock over several
            return try RedisLeaseStore(url: url)
        case .s3:  // S3 store: credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
            return try S3LeaseStore(url: url)
        case .etcd:  // etcd store
            return try EtcdLeaseStore(url: url)
        default:
            throw BatonError.invalidArgument("the \(url.kind) store is not available in this build yet")
        }
    }
}
