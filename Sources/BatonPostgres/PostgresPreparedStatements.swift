import PostgresNIO

/// The statements of the hot paths, prepared once per connection and then executed with a Bind and an Execute
/// only: the server neither parses nor plans them again, and the client sends and decodes less per call (a claim
/// through a prepared statement costs the server about a fifth less than the same statement parsed each time).
///
/// PostgresNIO names a prepared statement by its type and keeps it per connection, while the SQL names the store's
/// schema, known only at run time. The schema is therefore bound as a task-local value around each execution
/// (``PostgresSchema/execute(_:on:logger:)``): every connection belongs to one store's pool (or is its shared
/// connection), so it only ever prepares the statement for that store's schema.
enum PostgresPrepared {
    /// The schema of the statement executed in this task (quoted by ``PostgresSchema``).
    @TaskLocal static var schema = ""

    /// `baton_claim`: the round's winner after the claim.
    struct Claim: PostgresPreparedStatement {
        static let name = "baton_claim_1"
        static var sql: String { "SELECT \"\(PostgresPrepared.schema)\".baton_claim($1, $2, $3, $4)" }
        typealias Row = String?

        var system: String
        var round: String
        var candidate: String
        var retentionMilliseconds: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 4)
            bindings.append(system)
            bindings.append(round)
            bindings.append(candidate)
            bindings.append(retentionMilliseconds)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(String?.self)
        }
    }

    /// A lone renew: the key, if the term was still live and is renewed (no row if not). A batch of several renews
    /// is one statement over arrays instead (``PostgresSchema/renew(_:)``), prepared by nobody: its shape is the
    /// same for every size, but a lone renew is what most processes send, and without the arrays it costs the
    /// server about a third less.
    struct Renew: PostgresPreparedStatement {
        static let name = "baton_renew_1"
        static var sql: String {
            """
            WITH clock AS (SELECT clock_timestamp() AS now)
            UPDATE "\(PostgresPrepared.schema)".baton_leases AS l SET metadata = $4, ttl_ms = $5,
                expires_at = clock.now + $5 * interval '1 millisecond', updated_at = clock.now
            FROM clock
            WHERE l.key = $1 AND l.holder = $2 AND l.token = $3 AND l.expires_at > clock.now
            RETURNING l.key
            """
        }
        typealias Row = String

        var renewal: PostgresRenewal

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 5)
            bindings.append(renewal.key)
            bindings.append(renewal.holder)
            bindings.append(renewal.token)
            bindings.append(renewal.metadata)
            bindings.append(renewal.ttlMilliseconds)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row {
            try row.decode(String.self)
        }
    }
}

extension PostgresSchema {
    /// Executes `statement` on `connection` as a statement prepared for this schema (see ``PostgresPrepared``),
    /// and returns its rows.
    func execute<Statement: PostgresPreparedStatement>(
        _ statement: Statement,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [Statement.Row] where Statement.Row: Sendable {
        try await PostgresPrepared.$schema.withValue(schema) {
            var rows: [Statement.Row] = []
            for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }
}
