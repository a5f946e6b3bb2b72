import Baton
import Logging
import PostgresNIO

/// The tables of one schema and the statements that use them (the layout is in the documentation of
/// ``PostgresLeaseStore``). The schema name is validated (`[a-z_][a-z0-9_]*`), so it is written into the SQL
/// as a quoted identifier; every value is a bound parameter.
struct PostgresSchema: Sendable {
    /// The schema version this code writes and reads.
    static let version = 1
    /// How long the server waits for the next statement of a setup before it ends the session (and the lock).
    static let setupIdleTimeout = "3s"

    /// The key of the advisory lock that serializes schema setup across processes ("baton" in ASCII).
    static let setupLockKey: Int64 = 0x6261_746F_6E00

    let schema: String
    let leases: String
    let rounds: String
    let presence: String
    let meta: String
    /// The `NOTIFY` channel whose payload is the changed key: `baton_changes_<schema>` (read by earlier Batons).
    let channel: String
    /// The `LISTEN`/`NOTIFY` channel whose payload is the key's new state (``PostgresStatePayload``):
    /// `baton_states_<schema>`.
    let statesChannel: String

    init(schema: String) {
        self.schema = schema
        let prefix = "\"\(schema)\"."
        leases = prefix + "baton_leases"
        rounds = prefix + "baton_rounds"
        presence = prefix + "baton_presence"
        meta = prefix + "baton_meta"
        channel = "baton_changes_\(schema)"
        statesChannel = "baton_states_\(schema)"
    }

    // MARK: Setup

    /// Creates the schema, the tables and the notification trigger if they are missing, and checks the schema
    /// version. Idempotent, and safe for many processes at once: the setup runs in one transaction under an
    /// advisory lock, and is skipped when the version row already says it is done, also when it comes to say so
    /// while the setup waits for the lock.
    func prepare(_ connection: PostgresConnection, logger: Logger) async throws {
        if let version = try await existingVersion(connection, logger: logger), version >= Self.version {
            try checkVersion(version)
            // The queue and the functions came after version 1's first setups: a database set up by an earlier
            // Baton gets them now.
            if try await functionsAreCurrent(connection, logger: logger) { return }
        }
        let version = try await connection.withTransaction(logger: logger) { connection -> Int? in
            // The lock serializes every setup on the server: a client that goes silent in the middle (a partition)
            // must not hold it until TCP gives up, hours later. The server ends the session once it has waited this
            // long for the next statement, which rolls the setup back and frees the lock.
            try await connection.query(
                PostgresQuery(unsafeSQL: "SET LOCAL idle_in_transaction_session_timeout = '\(Self.setupIdleTimeout)'"),
                logger: logger)
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.setupLockKey))", logger: logger)
            // Reading pg_namespace here also brings this session's catalog caches up to date with what was
            // committed while it waited (a lookup by name, as `to_regclass`, could still miss it).
            let exists = try await connection.query(
                "SELECT 1 FROM pg_namespace WHERE nspname = \(schema)",
                logger: logger
            ).collect()
            // Done by the setup this one waited for (many processes starting at once on a new database): the
            // rest would only rewrite the same functions, one process after another, under the lock.
            if !exists.isEmpty, let version = try await existingVersion(connection, logger: logger),
                version >= Self.version, try await functionsAreCurrent(connection, logger: logger)
            {
                return version
            }
            if exists.isEmpty {
                try await connection.query(
                    PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \"\(schema)\""), logger: logger)
            }
            for statement in setupStatements + functionStatements + [recordFunctionsVersion] {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let trigger = try await connection.query(
                "SELECT 1 FROM pg_trigger WHERE tgname = 'baton_leases_notify' AND tgrelid = \(leases)::regclass",
                logger: logger
            ).collect()
            if trigger.isEmpty {
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE TRIGGER baton_leases_notify AFTER INSERT OR UPDATE ON \(leases)
                            FOR EACH ROW EXECUTE FUNCTION "\(schema)".baton_leases_notify()
                            """
                    ),
                    logger: logger
                )
            }
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(meta) (name, value) VALUES ('schema_version', $1)
                        ON CONFLICT (name) DO NOTHING
                        """,
                    binds: Self.binds(String(Self.version))
                ),
                logger: logger
            )
            return try await readVersion(connection, logger: logger)
        }
        try checkVersion(version)
    }

    private func existingVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int? {
        let rows = try await connection.query(
            "SELECT to_regclass(\(meta)) IS NOT NULL",
            logger: logger
        ).collect()
        guard let present = try rows.first?.decode(Bool.self), present else { return nil }
        return try await readVersion(connection, logger: logger)
    }

    private func readVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int? {
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT value FROM \(meta) WHERE name = 'schema_version'"),
            logger: logger
        ).collect()
        return try rows.first.flatMap { Int(try $0.decode(String.self)) }
    }

    private func checkVersion(_ version: Int?) throws {
        guard let version, version <= Self.version else {
            throw BatonError.storeUnavailable(
                "the Baton tables in schema \(schema) have version \(version.map(String.init) ?? "unknown"); "
                    + "this Baton knows version \(Self.version) (were they written by a newer Baton?)"
            )
        }
    }

    /// Table, index and trigger function definitions, each idempotent.
    private var setupStatements: [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS \(meta) (
                name  text COLLATE "C" PRIMARY KEY,
                value text NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS \(leases) (
                key        text COLLATE "C" PRIMARY KEY,
                token      bigint NOT NULL,
                holder     text COLLATE "C",
                metadata   text,
                ttl_ms     bigint,
                expires_at timestamptz,
                updated_at timestamptz NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS \(rounds) (
                system       text COLLATE "C" NOT NULL,
                round        text COLLATE "C" NOT NULL,
                winner       text COLLATE "C",
                completed_by text COLLATE "C",
                expires_at   timestamptz NOT NULL,
                PRIMARY KEY (system, round)
            )
            """,
            "CREATE INDEX IF NOT EXISTS baton_rounds_by_expiry ON \(rounds) (expires_at)",
            """
            CREATE TABLE IF NOT EXISTS \(presence) (
                group_name text COLLATE "C" NOT NULL,
                member     text COLLATE "C" NOT NULL,
                expires_at timestamptz NOT NULL,
                PRIMARY KEY (group_name, member)
            )
            """,
            "CREATE INDEX IF NOT EXISTS baton_presence_by_expiry ON \(presence) (expires_at)",
            """
            CREATE OR REPLACE FUNCTION "\(schema)".baton_leases_notify() RETURNS trigger
            LANGUAGE plpgsql AS $$
            DECLARE payload text;
            BEGIN
                IF TG_OP = 'INSERT' OR OLD.token IS DISTINCT FROM NEW.token
                    OR OLD.holder IS DISTINCT FROM NEW.holder OR OLD.metadata IS DISTINCT FROM NEW.metadata
                THEN
                    PERFORM pg_notify('\(channel)', NEW.key);
                    payload := 'p1 ' || octet_length(NEW.key) || ' ' || NEW.token || ' ' || coalesce(NEW.ttl_ms, 0)
                        || ' ' || coalesce(octet_length(NEW.holder), -1) || ' '
                        || CASE WHEN NEW.metadata IS NULL THEN '0' ELSE '1' END || ' '
                        || NEW.key || coalesce(NEW.holder, '') || coalesce(NEW.metadata, '');
                    IF octet_length(payload) >= 7990 THEN
                        payload := 'p0 ' || NEW.key;
                    END IF;
                    PERFORM pg_notify('\(statesChannel)', payload);
                END IF;
                RETURN NULL;
            END
            $$
            """,
        ]
    }

    // MARK: Leases

    /// The time left until `column`, in whole microseconds, as seen by the `clock` CTE.
    private func remainingMicroseconds(_ column: String) -> String {
        "floor(extract(epoch FROM (\(column) - clock.now)) * 1000000)::bigint"
    }

    /// Renews many terms in one statement, each if its key is still in that term (same holder and token, not
    /// expired): returns the key of each term renewed. The keys must differ. (A lone renew is
    /// ``PostgresPrepared/Renew``.)
    func renew(_ renewals: [PostgresRenewal]) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(renewals.map(\.key))
        bindings.append(renewals.map(\.holder))
        bindings.append(renewals.map(\.token))
        bindings.append(renewals.map { $0.metadata ?? "" })
        bindings.append(renewals.map { $0.metadata != nil })
        bindings.append(renewals.map(\.ttlMilliseconds))
        return PostgresQuery(
            unsafeSQL: """
                WITH clock AS (SELECT clock_timestamp() AS now)
                UPDATE \(leases) AS l SET metadata = CASE WHEN r.has_metadata THEN r.metadata END, ttl_ms = r.ttl_ms,
                    expires_at = clock.now + r.ttl_ms * interval '1 millisecond', updated_at = clock.now
                FROM clock, unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::boolean[], $6::bigint[])
                    AS r(key, holder, token, metadata, has_metadata, ttl_ms)
                WHERE l.key = r.key AND l.holder = r.holder AND l.token = r.token AND l.expires_at > clock.now
                RETURNING l.key
                """,
            binds: bindings
        )
    }

    /// The live term of a key: token, holder, metadata, ttl_ms, remaining microseconds; no row if none.
    func current(key: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                WITH clock AS (SELECT clock_timestamp() AS now)
                SELECT l.token, l.holder, l.metadata, l.ttl_ms, \(remainingMicroseconds("l.expires_at"))
                FROM \(leases) AS l, clock
                WHERE l.key = $1 AND l.holder IS NOT NULL AND l.expires_at > clock.now
                """,
            binds: Self.binds(key)
        )
    }

    /// The live terms of keys from `prefix` up to `end` (nil: no end), in key order, at most `limit`: key, token,
    /// holder, metadata, ttl_ms, remaining microseconds.
    func leases(prefix: String, end: String?, limit: Int) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                WITH clock AS (SELECT clock_timestamp() AS now)
                SELECT l.key, l.token, l.holder, l.metadata, l.ttl_ms, \(remainingMicroseconds("l.expires_at"))
                FROM \(leases) AS l, clock
                WHERE l.key >= $1 AND ($2::text IS NULL OR l.key < $2::text) AND starts_with(l.key, $1)
                    AND l.holder IS NOT NULL AND l.expires_at > clock.now
                ORDER BY l.key LIMIT $3
                """,
            binds: Self.binds(.text(prefix), .text(end), .bigint(Int64(limit)))
        )
    }

    // MARK: Rounds

    /// The live rounds of `system`, the greatest name first, at most `limit`: round, winner, completed_by.
    func rounds(system: String, limit: Int) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                SELECT round, winner, completed_by FROM \(rounds)
                WHERE system = $1 AND expires_at > clock_timestamp() ORDER BY round DESC LIMIT $2
                """,
            binds: Self.binds(.text(system), .bigint(Int64(limit)))
        )
    }

    /// Makes sure a row exists to lock: an already-expired placeholder if the round has none.
    func ensureRound(system: String, round: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                INSERT INTO \(rounds) (system, round, winner, completed_by, expires_at)
                VALUES ($1, $2, NULL, NULL, '-infinity') ON CONFLICT (system, round) DO NOTHING
                """,
            binds: Self.binds(system, round)
        )
    }

    /// Locks a round's row and reads it: winner, completed_by, whether it is live.
    func lockRound(system: String, round: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                SELECT winner, completed_by, expires_at > clock_timestamp() FROM \(rounds)
                WHERE system = $1 AND round = $2 FOR UPDATE
                """,
            binds: Self.binds(system, round)
        )
    }

    /// Stores a round record; with `retentionMilliseconds` its retention starts again now, else it is kept.
    func writeRound(system: String, round: String, record: RoundRecord, retentionMilliseconds: Int64?) -> PostgresQuery
    {
        PostgresQuery(
            unsafeSQL: """
                UPDATE \(rounds) SET winner = $3, completed_by = $4,
                    expires_at = CASE WHEN $5::bigint IS NULL THEN expires_at
                        ELSE clock_timestamp() + $5::bigint * interval '1 millisecond' END
                WHERE system = $1 AND round = $2
                """,
            binds: Self.binds(system, round, record.winner, record.completedBy, retentionMilliseconds)
        )
    }

    /// A live round's winner and completer; no row if there is no live record.
    func readRound(system: String, round: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                SELECT winner, completed_by FROM \(rounds)
                WHERE system = $1 AND round = $2 AND expires_at > clock_timestamp()
                """,
            binds: Self.binds(system, round)
        )
    }

    /// Deletes expired rounds and heartbeats.
    var sweep: [PostgresQuery] {
        [
            PostgresQuery(unsafeSQL: "DELETE FROM \(rounds) WHERE expires_at <= clock_timestamp()"),
            PostgresQuery(unsafeSQL: "DELETE FROM \(presence) WHERE expires_at <= clock_timestamp()"),
        ]
    }

    // MARK: Presence

    func heartbeat(group: String, member: String, ttlMilliseconds: Int64) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                INSERT INTO \(presence) (group_name, member, expires_at)
                VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
                ON CONFLICT (group_name, member) DO UPDATE SET expires_at = excluded.expires_at
                """,
            binds: Self.binds(group, member, ttlMilliseconds)
        )
    }

    func leave(group: String, member: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: "DELETE FROM \(presence) WHERE group_name = $1 AND member = $2",
            binds: Self.binds(group, member)
        )
    }

    func members(group: String) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: "SELECT member FROM \(presence) WHERE group_name = $1 AND expires_at > clock_timestamp()",
            binds: Self.binds(group)
        )
    }

    // MARK: Binds

    /// A value bound to a parameter: text, a bigint, or NULL of either type.
    enum Bind {
        case text(String?)
        case bigint(Int64?)
    }

    private static func binds(_ values: Bind...) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .text(let text): bindings.append(text)
            case .bigint(let number): bindings.append(number)
            }
        }
        return bindings
    }

    private static func binds(_ text: String) -> PostgresBindings { binds(.text(text)) }
    private static func binds(_ a: String, _ b: String) -> PostgresBindings { binds(.text(a), .text(b)) }
    private static func binds(_ a: String, _ b: String, _ c: Int64) -> PostgresBindings {
        binds(.text(a), .text(b), .bigint(c))
    }
    private static func binds(_ a: String, _ b: String, _ c: String?, _ d: String?, _ e: Int64?) -> PostgresBindings {
        binds(.text(a), .text(b), .text(c), .text(d), .bigint(e))
    }
}
