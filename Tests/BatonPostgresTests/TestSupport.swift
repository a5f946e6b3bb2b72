import Baton
import BatonPostgres
import Foundation
import Testing

/// The PostgreSQL servers `scripts/test` starts, named by environment variables.
enum TestServer {
    /// A required variable was missing under `CI=true`.
    struct Missing: Error, CustomStringConvertible {
        var variable: String
        var description: String {
            "\(variable) is not set, and under CI=true a missing PostgreSQL server is a failure "
                + "(scripts/test starts one)"
        }
    }

    /// The value of `variable`: under `CI=true` a missing one throws; otherwise it is nil and the test returns
    /// early (run `scripts/test` to get a server).
    static func variable(_ variable: String) throws -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let value = environment[variable], !value.isEmpty { return value }
        if environment["CI"] == "true" { throw Missing(variable: variable) }
        print("note: \(variable) is not set; skipping (scripts/test starts PostgreSQL)")
        return nil
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

/// A unique name, so tests sharing a database never collide.
func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8))" }

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
