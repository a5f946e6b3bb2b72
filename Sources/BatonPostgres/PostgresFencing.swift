import Baton
import Foundation
import Logging
import PostgresNIO

/// Fencing at the resource for data in PostgreSQL: a write whose fencing token is lower than the highest seen for its
/// resource fails, in the same transaction as the write, so the transaction is rolled back and nothing of it lands.
///
/// Install it once per database (idempotent; any session of the application's role may run it):
///
/// ```swift
/// try await PostgresFencing.install(on: connection, logger: logger)
/// ```
///
/// It adds, in the given schema (default `public`):
/// - the table `baton_fences (resource text PRIMARY KEY, token bigint, updated_at timestamptz)`, the highest token
///   per resource;
/// - the function `baton_fence(resource text, token bigint) RETURNS bigint`: admits a token at least the highest
///   (raising it, and locking the resource's row until the transaction ends, so writes of one resource under
///   fencing are serialized) or raises SQLSTATE `BT409` naming both tokens;
/// - the trigger function `baton_fenced_row()`, for a table whose rows carry their resource and token:
///
/// ```sql
/// CREATE TRIGGER invoices_fenced BEFORE INSERT OR UPDATE ON invoices
///     FOR EACH ROW EXECUTE FUNCTION baton_fenced_row('resource', 'fencing_token');
/// -- the first argument names the resource column, or gives the resource itself after '=': '=billing'
/// ```
///
/// Without a trigger, admit the token first in the transaction that writes (``admit(_:for:on:schema:logger:)``,
/// or the statement ``check(resource:token:schema:)``):
///
/// ```swift
/// try await client.withTransaction(logger: logger) { connection in
///     try await PostgresFencing.admit(lease.token, for: lease.key, on: connection, logger: logger)
///     try await connection.query("UPDATE invoices SET paid = true WHERE id = \(id)", logger: logger)
/// }
/// ```
///
/// ``admit(_:for:on:schema:logger:)`` throws a refusal as ``StaleFencingToken``; a write refused by the trigger
/// surfaces as a `PSQLError`, which ``staleToken(in:)`` reads as one. Use the key the
/// token was issued for as the resource (a semaphore slot's or a shard's own key): tokens of different keys are not
/// comparable. A `DELETE` carries no row to check: fence it with ``admit(_:for:on:schema:logger:)``.
public enum PostgresFencing {
    /// The SQLSTATE of a refused write (a stale token).
    public static let staleTokenState = "BT409"
    /// The SQLSTATE of a fenced write without a resource or a token.
    public static let missingTokenState = "BT400"

    /// The statements that install the table and the functions in `schema`, each idempotent.
    /// - Throws: ``BatonError`` `invalidArgument` for a schema name that is not `[a-z_][a-z0-9_]*` (at most 48 bytes).
    public static func installStatements(schema: String = "public") throws -> [String] {
        try PostgresLeaseStore.Configuration.validate(schema: schema)
        let s = "\"\(schema)\""
        return [
            "CREATE SCHEMA IF NOT EXISTS \(s)",
            """
            CREATE TABLE IF NOT EXISTS \(s).baton_fences (
                resource   text COLLATE "C" PRIMARY KEY,
                token      bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
            )
            """,
            """
            CREATE OR REPLACE FUNCTION \(s).baton_fence(p_resource text, p_token bigint) RETURNS bigint
                LANGUAGE plpgsql AS $$
            DECLARE highest bigint;
            BEGIN
                IF p_resource IS NULL OR p_resource = '' OR p_token IS NULL THEN
                    RAISE EXCEPTION USING ERRCODE = '\(missingTokenState)',
                        MESSAGE = 'a fenced write needs a resource and a fencing token';
                END IF;
                INSERT INTO \(s).baton_fences AS f (resource, token) VALUES (p_resource, p_token)
                ON CONFLICT (resource) DO UPDATE SET token = excluded.token, updated_at = clock_timestamp()
                    WHERE f.token <= excluded.token
                RETURNING f.token INTO highest;
                IF FOUND THEN RETURN highest; END IF;
                SELECT f.token INTO highest FROM \(s).baton_fences AS f WHERE f.resource = p_resource;
                RAISE EXCEPTION USING ERRCODE = '\(staleTokenState)',
                    MESSAGE = format('stale fencing token %s for %s: token %s was already accepted',
                        p_token, p_resource, highest),
                    DETAIL = format('token %s, highest %s, resource %s', p_token, highest, p_resource);
            END
            $$
            """,
            """
            CREATE OR REPLACE FUNCTION \(s).baton_fenced_row() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE r jsonb; resource text; token bigint;
            BEGIN
                IF TG_NARGS <> 2 THEN
                    RAISE EXCEPTION 'baton_fenced_row() on % needs 2 arguments (the resource column or =resource, '
                        'the token column), got %', TG_TABLE_NAME, TG_NARGS;
                END IF;
                r := to_jsonb(NEW);
                resource := CASE WHEN left(TG_ARGV[0], 1) = '=' THEN substr(TG_ARGV[0], 2) ELSE r ->> TG_ARGV[0] END;
                token := (r ->> TG_ARGV[1])::bigint;
                IF resource IS NULL OR resource = '' OR token IS NULL THEN
                    RAISE EXCEPTION USING ERRCODE = '\(missingTokenState)',
                        MESSAGE = format('a fenced row of %s needs its resource (%s) and its token (%s)',
                            TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[1]);
                END IF;
                PERFORM \(s).baton_fence(resource, token);
                RETURN NEW;
            END
            $$
            """,
        ]
    }

    /// Installs the table and the functions in `schema` (see ``PostgresFencing``), in one transaction.
    /// - Throws: ``BatonError`` `invalidArgument` for a bad schema name; the connection's errors.
    public static func install(on connection: PostgresConnection, schema: String = "public", logger: Logger)
        async throws
    {
        let statements = try installStatements(schema: schema)
        try await connection.withTransaction(logger: logger) { connection in
            for statement in statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    /// Installs the table and the functions in `schema` on a connection of `client` (see
    /// ``install(on:schema:logger:)``); the client must be running.
    public static func install(on client: PostgresClient, schema: String = "public", logger: Logger) async throws {
        try await client.withConnection { connection in
            try await install(on: connection, schema: schema, logger: logger)
        }
    }

    /// Admits `token` for `resource` in the transaction `connection` is in, before the write (see
    /// ``PostgresFencing``): on a refusal the transaction is aborted, so the caller rolls it back.
    /// - Throws: ``StaleFencingToken`` if a higher token was accepted for `resource`; ``BatonError``
    ///   `invalidArgument` for a bad schema name; the connection's other errors.
    public static func admit(
        _ token: FencingToken,
        for resource: String,
        on connection: PostgresConnection,
        schema: String = "public",
        logger: Logger
    ) async throws {
        let query = try check(resource: resource, token: token, schema: schema)
        do {
            // The rows are read: a statement's error arrives with them.
            _ = try await connection.query(query, logger: logger).collect()
        } catch {
            throw staleToken(in: error) ?? error
        }
    }

    /// The statement that admits `token` for `resource` or fails with SQLSTATE ``staleTokenState``: run it in the
    /// transaction that writes, before the write, and read its row (a statement's error comes with its rows). It
    /// returns the highest token, now `token`. ``admit(_:for:on:schema:logger:)`` runs it for you.
    /// - Throws: ``BatonError`` `invalidArgument` for a bad schema name.
    public static func check(resource: String, token: FencingToken, schema: String = "public") throws
        -> PostgresQuery
    {
        try PostgresLeaseStore.Configuration.validate(schema: schema)
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(resource)
        bindings.append(token)
        return PostgresQuery(unsafeSQL: "SELECT \"\(schema)\".baton_fence($1, $2)", binds: bindings)
    }

    /// The stale token that made the database refuse a write, if `error` is that refusal (SQLSTATE
    /// ``staleTokenState``); nil for any other error.
    public static func staleToken(in error: any Error) -> StaleFencingToken? {
        guard let error = error as? PSQLError, let info = error.serverInfo,
            info[.sqlState] == staleTokenState, let detail = info[.detail]
        else { return nil }
        // "token T, highest H, resource R": the resource is last, as it may contain ", ".
        guard detail.hasPrefix("token "), let highestMark = detail.range(of: ", highest "),
            let resourceMark = detail.range(of: ", resource ", range: highestMark.upperBound..<detail.endIndex),
            let token = FencingToken(detail[detail.index(detail.startIndex, offsetBy: 6)..<highestMark.lowerBound]),
            let highest = FencingToken(detail[highestMark.upperBound..<resourceMark.lowerBound])
        else { return nil }
        return StaleFencingToken(resource: String(detail[resourceMark.upperBound...]), token: token, highest: highest)
    }
}
