import Baton
import BatonTestKit
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import BatonPostgres

/// Fencing at the resource in PostgreSQL: a leader whose term ended while it was paused writes late with its old
/// token, after the next leader wrote with a larger one. The guarded writes (the row trigger, the check in the
/// transaction) are refused and roll back; the same writes without the guard land.
@Suite struct PostgresFencingTests {
    let logger = Logger(label: "baton.tests")

    /// Two real terms of one key on the test server: the first expires while its leader is "paused", the second
    /// starts after it. Returns (old token, new token).
    func twoTerms(_ store: LeaseStore, key: String) async throws -> (FencingToken, FencingToken) {
        let old = try #require(try await store.acquire(key: key, holder: "paused", ttl: .milliseconds(300)).lease)
        var new: Lease?
        try await waitUntil("the paused leader's term expired and the next leader took the key") {
            new = try await store.acquire(key: key, holder: "next", ttl: .seconds(30)).lease
            return new != nil
        }
        let next = try #require(new)
        #expect(next.token > old.token)
        try await store.release(next)
        return (old.token, next.token)
    }

    func withFencedSchema(_ body: (PostgresConnection, String) async throws -> Void) async throws {
        guard let url = try TestServer.url() else { return }
        let schema = "baton_test_" + unique("fence").replacingOccurrences(of: "-", with: "_").lowercased()
        let settings = try PostgresConnectionSettings(StoreURL("\(url)?sslmode=disable"))
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(.init()), id: 1, logger: logger)
        do {
            try await PostgresFencing.install(on: connection, schema: schema, logger: logger)
            // Installing twice changes nothing.
            try await PostgresFencing.install(on: connection, schema: schema, logger: logger)
            try await body(connection, schema)
        } catch {
            _ = try? await connection.query(
                PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"), logger: logger)
            try? await connection.close()
            throw error
        }
        try await connection.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"), logger: logger)
        try await connection.close()
    }

    func run(_ connection: PostgresConnection, _ sql: String) async throws {
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    func count(_ connection: PostgresConnection, _ sql: String) async throws -> Int {
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
        return try rows.first?.decode(Int.self) ?? -1
    }

    func insert(_ connection: PostgresConnection, into table: String, key: String, token: FencingToken, note: String)
        async throws
    {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(key)
        bindings.append(token)
        bindings.append(note)
        try await connection.query(
            PostgresQuery(
                unsafeSQL: "INSERT INTO \(table) (resource, fencing_token, note) VALUES ($1, $2, $3)",
                binds: bindings), logger: logger)
    }

    @Test func theRowTriggerRefusesAPausedLeadersLateWrite() async throws {
        guard let driver = try TestServer.store() else { return }
        try await using(driver) { store in
            try await withFencedSchema { connection, schema in
                let key = unique("fenced-jobs")
                let (old, new) = try await twoTerms(store, key: key)
                let fenced = "\"\(schema)\".jobs"
                let control = "\"\(schema)\".jobs_unguarded"
                for table in [fenced, control] {
                    try await run(
                        connection,
                        "CREATE TABLE \(table) (id serial PRIMARY KEY, resource text, fencing_token bigint, note text)")
                }
                try await run(
                    connection,
                    "CREATE TRIGGER jobs_fenced BEFORE INSERT OR UPDATE ON \(fenced) FOR EACH ROW "
                        + "EXECUTE FUNCTION \"\(schema)\".baton_fenced_row('resource', 'fencing_token')")
                // The paused leader writes before its pause (its term is live then): accepted by both.
                try await insert(connection, into: fenced, key: key, token: old, note: "before the pause")
                try await insert(connection, into: control, key: key, token: old, note: "before the pause")
                // The next leader writes; then the paused one resumes and writes with its old token.
                try await insert(connection, into: fenced, key: key, token: new, note: "next leader")
                try await insert(connection, into: control, key: key, token: new, note: "next leader")
                let refusal = await #expect(throws: PSQLError.self) {
                    try await insert(connection, into: fenced, key: key, token: old, note: "late write")
                }
                #expect(
                    refusal.flatMap(PostgresFencing.staleToken(in:))
                        == StaleFencingToken(resource: key, token: old, highest: new))
                // The control without the guard takes the same late write.
                try await insert(connection, into: control, key: key, token: old, note: "late write")
                #expect(try await count(connection, "SELECT count(*) FROM \(fenced) WHERE note = 'late write'") == 0)
                #expect(try await count(connection, "SELECT count(*) FROM \(control) WHERE note = 'late write'") == 1)
                // An update by the stale leader is refused as well; the next leader's term writes on.
                await #expect(throws: PSQLError.self) {
                    try await run(
                        connection, "UPDATE \(fenced) SET note = 'late update', fencing_token = \(old)")
                }
                try await run(connection, "UPDATE \(fenced) SET note = 'updated', fencing_token = \(new)")
                #expect(try await count(connection, "SELECT count(*) FROM \(fenced) WHERE note = 'updated'") == 2)
                // Tokens of another resource are not compared; a row without a token is refused with its reason.
                try await insert(connection, into: fenced, key: key + "#other", token: 1, note: "other resource")
                let missing = await #expect(throws: PSQLError.self) {
                    try await run(connection, "INSERT INTO \(fenced) (resource, note) VALUES ('\(key)', 'no token')")
                }
                #expect(missing?.serverInfo?[.sqlState] == PostgresFencing.missingTokenState)
                #expect(missing.flatMap(PostgresFencing.staleToken(in:)) == nil)
            }
        }
    }

    @Test func theCheckInTheWritingTransactionRollsTheLateWriteBack() async throws {
        guard let driver = try TestServer.store() else { return }
        try await using(driver) { store in
            try await withFencedSchema { connection, schema in
                let key = unique("fenced, key")
                let (old, new) = try await twoTerms(store, key: key)
                let table = "\"\(schema)\".ledger"
                try await run(
                    connection,
                    "CREATE TABLE \(table) (id serial PRIMARY KEY, resource text, fencing_token bigint, note text)")
                func write(token: FencingToken, note: String, fenced: Bool) async throws {
                    try await run(connection, "BEGIN")
                    do {
                        if fenced {
                            try await PostgresFencing.admit(
                                token, for: key, on: connection, schema: schema, logger: logger)
                        }
                        try await insert(connection, into: table, key: key, token: token, note: note)
                        try await run(connection, "COMMIT")
                    } catch {
                        try await run(connection, "ROLLBACK")
                        throw error
                    }
                }
                try await write(token: new, note: "next leader", fenced: true)
                // The resource's name is read back whole, its ", " included.
                await #expect(throws: StaleFencingToken(resource: key, token: old, highest: new)) {
                    try await write(token: old, note: "late, guarded", fenced: true)
                }
                // The statement alone, its row read, fails as the database refused it.
                try await run(connection, "BEGIN")
                let refusal = await #expect(throws: PSQLError.self) {
                    _ = try await connection.query(
                        try PostgresFencing.check(resource: key, token: old, schema: schema), logger: logger
                    ).collect()
                }
                try await run(connection, "ROLLBACK")
                #expect(
                    refusal.flatMap(PostgresFencing.staleToken(in:))
                        == StaleFencingToken(resource: key, token: old, highest: new))
                try await write(token: old, note: "late, unguarded", fenced: false)
                #expect(try await count(connection, "SELECT count(*) FROM \(table) WHERE note = 'late, guarded'") == 0)
                #expect(
                    try await count(connection, "SELECT count(*) FROM \(table) WHERE note = 'late, unguarded'") == 1)
                // The same term writes again with its token.
                try await write(token: new, note: "next leader again", fenced: true)
            }
        }
    }

    @Test func badSchemaNamesAreRefusedBeforeAnySQL() {
        for bad in ["", "Public", "a-b", "x\"; DROP TABLE y; --", String(repeating: "a", count: 49)] {
            #expect(throws: BatonError.self) { try PostgresFencing.installStatements(schema: bad) }
            #expect(throws: BatonError.self) { try PostgresFencing.check(resource: "k", token: 1, schema: bad) }
        }
    }
}
