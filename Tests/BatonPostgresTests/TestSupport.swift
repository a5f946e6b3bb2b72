import Baton
import BatonTestKit
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import BatonPostgres

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

    /// A store on the shared server with a small pool, or nil outside CI without a server. It is not running.
    static func store(
        _ configuration: PostgresLeaseStore.Configuration = .init(maximumConnections: 4)
    ) throws -> PostgresLeaseStore? {
        guard let url = try url() else { return nil }
        return try PostgresLeaseStore(url: url, configuration: configuration)
    }

    /// How many sessions carry `applicationName` on the server at `url`, and whether all of them use TLS.
    static func sessions(named applicationName: String, url: StoreURL) async throws -> (count: Int, encrypted: Bool) {
        let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
        let logger = Logger(label: "baton.tests")
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(.init()),
            id: 1,
            logger: logger
        )
        let rows: [PostgresRow]
        do {
            rows = try await connection.query(
                """
                SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a
                JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = \(applicationName)
                """,
                logger: logger
            ).collect()
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        let (count, encrypted) = try #require(rows.first).decode((Int64, Bool).self)
        return (Int(count), encrypted)
    }
}

extension TestServer {
    /// How many rows the default schema's leases and waiters tables hold for `key` on the server at `url`.
    static func rows(ofKey key: String, url: StoreURL) async throws -> Int {
        let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
        let logger = Logger(label: "baton.tests")
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(.init()),
            id: 1,
            logger: logger
        )
        do {
            let rows = try await connection.query(
                """
                SELECT (SELECT count(*) FROM baton_leases WHERE key = \(key))
                    + (SELECT count(*) FROM baton_waiters WHERE key = \(key))
                """,
                logger: logger
            ).collect()
            try await connection.close()
            return Int(try #require(rows.first).decode(Int64.self))
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The last statement of each session that carries `applicationName` on the server at `url`.
    static func lastStatements(named applicationName: String, url: StoreURL) async throws -> [String] {
        let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
        let logger = Logger(label: "baton.tests")
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(.init()),
            id: 1,
            logger: logger
        )
        do {
            let rows = try await connection.query(
                "SELECT query FROM pg_stat_activity WHERE application_name = \(applicationName)",
                logger: logger
            ).collect()
            try await connection.close()
            return try rows.map { try $0.decode(String.self) }
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// Runs `store` behind a ``LeaseStore`` front while `body` runs, then stops it (also when `body` throws).
func using<T>(_ store: PostgresLeaseStore, _ body: (LeaseStore) async throws -> T) async throws -> T {
    try await LeaseStore(store).withRunning(body)
}

/// Runs `stores` while `body` runs, then stops them all (also when `body` throws).
func usingAll<T>(_ stores: [LeaseStore], _ body: ([LeaseStore]) async throws -> T) async throws -> T {
    try await usingAll(stores[...], running: [], body)
}

private func usingAll<T>(
    _ stores: ArraySlice<LeaseStore>,
    running: [LeaseStore],
    _ body: ([LeaseStore]) async throws -> T
) async throws -> T {
    guard let first = stores.first else { return try await body(running) }
    return try await first.withRunning { store in
        try await usingAll(stores.dropFirst(), running: running + [store], body)
    }
}

/// The `BatonError` that `body` throws, or nil if it throws something else or nothing.
func batonError(_ body: () async throws -> Void) async -> BatonError? {
    do {
        try await body()
        return nil
    } catch let error as BatonError {
        return error
    } catch {
        return nil
    }
}

/// The code of the `BatonError` that `body` throws, or nil if it throws something else or nothing.
func batonErrorCode(_ body: () async throws -> Void) async -> BatonError.Code? {
    await batonError(body)?.code
}

/// Waits in real time until `condition` holds (see ``BatonTestKit/eventually(timeout:interval:_:)``); fails the
/// test, naming `what`, if it does not within `timeout`.
func waitUntil(_ what: String, timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    try #require(try await eventually(timeout: timeout, condition), "timed out after \(timeout) waiting until \(what)")
}
