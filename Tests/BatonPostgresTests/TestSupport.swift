import Baton
import BatonPostgres
import BatonTestKit
import Foundation
import Testing

/// The PostgreSQL servers `scripts/test` starts, named by environment variables (see ``RealServer``).
enum TestServer {
    /// The value of `variable` (see ``RealServer/require(_:)``).
    static func variable(_ variable: String) throws -> String? {
        try RealServer.require(variable)
    }

    /// The shared test server's URL, or nil outside CI without one.
    static func url() throws -> StoreURL? {
        try variable("BATON_TEST_POSTGRES_URL").map { try StoreURL($0) }
    }

    /// Opens a store on the shared server with a small pool, or nil outside CI without a server.
    static func store(
        _ configuration: PostgresLeaseStore.Configuration = .init(maximumConnections: 4)
    ) async throws -> PostgresLeaseStore? {
        guard let url = try url() else { return nil }
        return try await PostgresLeaseStore(url: url, configuration: configuration)
    }
}

/// Runs `body` with `store`, closing the store afterwards also when `body` throws.
func using<T>(_ store: PostgresLeaseStore, _ body: (PostgresLeaseStore) async throws -> T) async throws -> T {
    do {
        let result = try await body(store)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

/// Runs `body` with `stores`, closing them all afterwards also when `body` throws.
func usingAll<T>(_ stores: [PostgresLeaseStore], _ body: ([PostgresLeaseStore]) async throws -> T) async throws -> T {
    let result: Result<T, any Error>
    do {
        result = .success(try await body(stores))
    } catch {
        result = .failure(error)
    }
    for store in stores { try? await store.close() }
    return try result.get()
}

/// The code of the `BatonError` that `body` throws, or nil if it throws something else or nothing.
func batonErrorCode(_ body: () async throws -> Void) async -> BatonError.Code? {
    do {
        try await body()
        return nil
    } catch let error as BatonError {
        return error.code
    } catch {
        return nil
    }
}
