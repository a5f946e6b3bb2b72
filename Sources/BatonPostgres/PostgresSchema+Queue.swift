import PostgresNIO

/// The queue of waiting candidates (`baton_waiters`) and the functions that take, release and look at a key in
/// queue order, each one statement for the client and atomic under the key's row lock; and the function that claims
/// a round (`baton_claim`), whose plan a session prepares once.
///
/// The rules, in every function:
/// - A waiter whose last waiting acquire is older than one and a half times its ttl is out of the queue (deleted
///   when a function looks).
/// - A free key goes to the first live candidate in line: whoever finds it free with a candidate ahead of it (an
///   acquire, a release, a change feed's look) starts that candidate's term, with the ttl and metadata of its last
///   waiting acquire, and answers it as the leader.
///
/// Each function returns the key's term as `(token, holder, metadata, ttl_ms, remaining µs)`, like the lease
/// statements, or no row for a free key (`baton_look`).
extension PostgresSchema {
    var waiters: String { "\"\(schema)\".baton_waiters" }

    /// The version of the queue's table and of the functions, recorded in `baton_meta` as `functions_version`.
    /// They came after schema version 1, whose first setups did not make them: a store that finds an older
    /// version (or none) makes them.
    /// Version 2: the notification trigger also sends the key's new state (``PostgresStatePayload``), and a
    /// release that hands the key on writes its row once.
    /// Version 3: a waiting candidate's place lasts one and a half ttl after its last waiting acquire (it asks once
    /// per ttl).
    /// Version 4: a candidate leaves the queue under the key's row lock (`baton_leave`), so that a release handing
    /// the key on is either seen whole by the candidate's next read or never picks it.
    static let functionsVersion = 4

    /// Whether the queue's table and the functions are at ``functionsVersion`` or later.
    func functionsAreCurrent(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT value FROM \(meta) WHERE name = 'functions_version'"), logger: logger
        ).collect()
        guard let value = try rows.first?.decode(String.self), let version = Int(value) else { return false }
        return version >= Self.functionsVersion
    }

    /// Records ``functionsVersion`` (never lowering it).
    var recordFunctionsVersion: String {
        """
        INSERT INTO \(meta) (name, value) VALUES ('functions_version', '\(Self.functionsVersion)')
        ON CONFLICT (name) DO UPDATE SET value = excluded.value
        WHERE \(meta).value::int < excluded.value::int
        """
    }

    /// The queue's table and the functions, each idempotent.
    var functionStatements: [String] {
        let f = "\"\(schema)\""
        let term = "(o_token bigint, o_holder text, o_metadata text, o_ttl_ms bigint, o_remaining_us bigint)"
        let remaining = """
            greatest(least(floor(extract(epoch FROM (l.expires_at - clock_timestamp())) * 1000000)::bigint,
                l.ttl_ms * 1000), 1)
            """
        return [
            """
            CREATE TABLE IF NOT EXISTS \(waiters) (
                key        text COLLATE "C" NOT NULL,
                holder     text COLLATE "C" NOT NULL,
                arrival    bigint GENERATED ALWAYS AS IDENTITY,
                metadata   text,
                ttl_ms     bigint NOT NULL,
                expires_at timestamptz NOT NULL,
                PRIMARY KEY (key, holder)
            )
            """,
            "CREATE INDEX IF NOT EXISTS baton_waiters_in_order ON \(waiters) (key, arrival)",
            // Puts a holder at the end of the queue, or keeps its place for another ttl. A holder whose time ran
            // out has left: asking again, it goes to the end.
            """
            CREATE OR REPLACE FUNCTION \(f).baton_join(p_key text, p_holder text, p_metadata text, p_ttl bigint,
                p_now timestamptz) RETURNS void LANGUAGE sql AS $$
                DELETE FROM \(waiters) WHERE key = p_key AND expires_at <= p_now;
                INSERT INTO \(waiters) (key, holder, metadata, ttl_ms, expires_at)
                VALUES (p_key, p_holder, p_metadata, p_ttl, p_now + p_ttl * interval '1.5 milliseconds')
                ON CONFLICT (key, holder) DO UPDATE SET metadata = excluded.metadata, ttl_ms = excluded.ttl_ms,
                    expires_at = excluded.expires_at;
            $$
            """,
            // Takes a holder's place out of the queue under the key's row lock, which every hand-on holds: a
            // release handing the key to this holder meanwhile commits first (the holder's next read sees its term),
            // and a later one no longer finds the holder in line. A plain DELETE could commit between a hand-on's
            // look at the queue and its write, leaving the holder a term that its next read does not show yet.
            """
            CREATE OR REPLACE FUNCTION \(f).baton_leave(p_key text, p_holder text) RETURNS void
                LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM 1 FROM \(leases) AS x WHERE x.key = p_key FOR UPDATE;
                DELETE FROM \(waiters) AS w WHERE w.key = p_key AND w.holder = p_holder;
            END
            $$
            """,
            // Starts the term of the first live candidate in line after a term that ended with p_last. The
            // caller holds the key's row lock.
            """
            CREATE OR REPLACE FUNCTION \(f).baton_hand_on(p_key text, p_last bigint, p_now timestamptz)
                RETURNS TABLE \(term) LANGUAGE plpgsql AS $$
            DECLARE h record;
            BEGIN
                DELETE FROM \(waiters) AS w WHERE w.key = p_key AND w.expires_at <= p_now;
                SELECT w.holder, w.metadata, w.ttl_ms INTO h FROM \(waiters) AS w
                    WHERE w.key = p_key ORDER BY w.arrival LIMIT 1;
                IF NOT FOUND THEN RETURN; END IF;
                UPDATE \(leases) AS l SET token = p_last + 1, holder = h.holder, metadata = h.metadata,
                    ttl_ms = h.ttl_ms, expires_at = p_now + h.ttl_ms * interval '1 millisecond', updated_at = p_now
                    WHERE l.key = p_key;
                DELETE FROM \(waiters) AS w WHERE w.key = p_key AND w.holder = h.holder;
                RETURN QUERY SELECT p_last + 1, h.holder::text, h.metadata::text, h.ttl_ms::bigint,
                    h.ttl_ms * 1000;
            END
            $$
            """,
            // Takes or renews a key in queue order (see PostgresLeaseStore.acquire(key:holder:ttl:metadata:waiting:)).
            """
            CREATE OR REPLACE FUNCTION \(f).baton_acquire(p_key text, p_holder text, p_metadata text, p_ttl bigint,
                p_waiting boolean) RETURNS TABLE \(term) LANGUAGE plpgsql AS $$
            DECLARE l record; n timestamptz; head text;
            BEGIN
                SELECT x.token, x.holder, x.metadata, x.ttl_ms, x.expires_at INTO l FROM \(leases) AS x
                    WHERE x.key = p_key FOR UPDATE;
                IF NOT FOUND THEN
                    INSERT INTO \(leases) (key, token, holder, metadata, ttl_ms, expires_at, updated_at)
                    VALUES (p_key, 1, p_holder, p_metadata, p_ttl,
                        clock_timestamp() + p_ttl * interval '1 millisecond', clock_timestamp())
                    ON CONFLICT (key) DO NOTHING;
                    IF FOUND THEN
                        RETURN QUERY SELECT 1::bigint, p_holder, p_metadata, p_ttl, p_ttl * 1000;
                        RETURN;
                    END IF;
                    SELECT x.token, x.holder, x.metadata, x.ttl_ms, x.expires_at INTO l FROM \(leases) AS x
                        WHERE x.key = p_key FOR UPDATE;
                END IF;
                n := clock_timestamp();
                IF l.holder IS NOT NULL AND l.expires_at > n THEN
                    IF l.holder = p_holder THEN
                        UPDATE \(leases) AS x SET metadata = p_metadata, ttl_ms = p_ttl,
                            expires_at = n + p_ttl * interval '1 millisecond', updated_at = n WHERE x.key = p_key;
                        RETURN QUERY SELECT l.token::bigint, p_holder, p_metadata, p_ttl, p_ttl * 1000;
                        RETURN;
                    END IF;
                    IF p_waiting THEN PERFORM \(f).baton_join(p_key, p_holder, p_metadata, p_ttl, n); END IF;
                    RETURN QUERY SELECT l.token::bigint, l.holder::text, l.metadata::text, l.ttl_ms::bigint,
                        \(remaining);
                    RETURN;
                END IF;
                DELETE FROM \(waiters) AS w WHERE w.key = p_key AND w.expires_at <= n;
                SELECT w.holder INTO head FROM \(waiters) AS w WHERE w.key = p_key ORDER BY w.arrival LIMIT 1;
                IF head IS NOT NULL AND head <> p_holder THEN
                    IF p_waiting THEN PERFORM \(f).baton_join(p_key, p_holder, p_metadata, p_ttl, n); END IF;
                    RETURN QUERY SELECT * FROM \(f).baton_hand_on(p_key, l.token, n);
                    RETURN;
                END IF;
                IF head IS NOT NULL THEN
                    DELETE FROM \(waiters) AS w WHERE w.key = p_key AND w.holder = p_holder;
                END IF;
                UPDATE \(leases) AS x SET token = l.token + 1, holder = p_holder, metadata = p_metadata,
                    ttl_ms = p_ttl, expires_at = n + p_ttl * interval '1 millisecond', updated_at = n
                    WHERE x.key = p_key;
                RETURN QUERY SELECT l.token + 1, p_holder, p_metadata, p_ttl, p_ttl * 1000;
            END
            $$
            """,
            // Ends a term and hands the key to the first candidate in line, if any. True if the term was ended.
            // The row is written once, with the next term or as free, so the trigger notifies the new state
            // alone (never a free key that is not free).
            """
            CREATE OR REPLACE FUNCTION \(f).baton_release(p_key text, p_holder text, p_token bigint)
                RETURNS boolean LANGUAGE plpgsql AS $$
            DECLARE n timestamptz;
            BEGIN
                PERFORM 1 FROM \(leases) AS x WHERE x.key = p_key AND x.holder = p_holder AND x.token = p_token
                    FOR UPDATE;
                IF NOT FOUND THEN RETURN false; END IF;
                n := clock_timestamp();
                IF NOT EXISTS (SELECT 1 FROM \(f).baton_hand_on(p_key, p_token, n)) THEN
                    UPDATE \(leases) AS x SET holder = NULL, metadata = NULL, ttl_ms = NULL, expires_at = NULL,
                        updated_at = n
                        WHERE x.key = p_key;
                END IF;
                RETURN true;
            END
            $$
            """,
            // Claims a round under RoundRules.claim: returns the winner afterwards. A function, so that its plan is
            // prepared once per session.
            """
            CREATE OR REPLACE FUNCTION \(f).baton_claim(p_system text, p_round text, p_candidate text,
                p_retention bigint) RETURNS text LANGUAGE plpgsql AS $$
            DECLARE w text;
            BEGIN
                INSERT INTO \(rounds) AS r (system, round, winner, completed_by, expires_at)
                VALUES (p_system, p_round, p_candidate, NULL,
                    clock_timestamp() + p_retention * interval '1 millisecond')
                ON CONFLICT (system, round) DO UPDATE SET winner = excluded.winner,
                    completed_by = CASE WHEN r.expires_at > clock_timestamp() THEN r.completed_by END,
                    expires_at = excluded.expires_at
                WHERE r.expires_at <= clock_timestamp() OR r.winner IS NULL
                RETURNING r.winner INTO w;
                IF FOUND THEN RETURN w; END IF;
                -- Left as it is: a live record with a winner, locked by the insert.
                SELECT r.winner INTO w FROM \(rounds) AS r WHERE r.system = p_system AND r.round = p_round;
                RETURN w;
            END
            $$
            """,
            // A change feed's read: the live term, after handing a free key to the first live candidate in line.
            // Takes the row lock only to hand on.
            """
            CREATE OR REPLACE FUNCTION \(f).baton_look(p_key text) RETURNS TABLE \(term) LANGUAGE plpgsql AS $$
            DECLARE l record; n timestamptz;
            BEGIN
                SELECT x.token, x.holder, x.metadata, x.ttl_ms, x.expires_at INTO l FROM \(leases) AS x
                    WHERE x.key = p_key;
                IF NOT FOUND THEN RETURN; END IF;
                n := clock_timestamp();
                IF l.holder IS NULL OR l.expires_at <= n THEN
                    IF NOT EXISTS (SELECT 1 FROM \(waiters) AS w WHERE w.key = p_key AND w.expires_at > n) THEN
                        RETURN;
                    END IF;
                    SELECT x.token, x.holder, x.metadata, x.ttl_ms, x.expires_at INTO l FROM \(leases) AS x
                        WHERE x.key = p_key FOR UPDATE;
                    n := clock_timestamp();
                    IF l.holder IS NULL OR l.expires_at <= n THEN
                        RETURN QUERY SELECT * FROM \(f).baton_hand_on(p_key, l.token, n);
                        RETURN;
                    END IF;
                END IF;
                RETURN QUERY SELECT l.token::bigint, l.holder::text, l.metadata::text, l.ttl_ms::bigint,
                    \(remaining);
            END
            $$
            """,
        ]
    }

    /// Takes or renews a key in queue order: the key's term afterwards (the holder's, or the leader that refused
    /// it: another holder, or the first candidate in line, whose term this statement started).
    func queuedAcquire(key: String, holder: String, ttlMilliseconds: Int64, metadata: String?, waiting: Bool)
        -> PostgresQuery
    {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(key)
        bindings.append(holder)
        bindings.append(metadata)
        bindings.append(ttlMilliseconds)
        bindings.append(waiting)
        return PostgresQuery(
            unsafeSQL: "SELECT * FROM \"\(schema)\".baton_acquire($1, $2, $3, $4, $5)", binds: bindings)
    }

    /// Ends a term and hands the key on; returns whether the term was ended.
    func queuedRelease(key: String, holder: String, token: Int64) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(key)
        bindings.append(holder)
        bindings.append(token)
        return PostgresQuery(unsafeSQL: "SELECT \"\(schema)\".baton_release($1, $2, $3)", binds: bindings)
    }

    /// What readies a server session for a release, which a candidate process makes once, at the end of its term
    /// and on the handover's path: a session compiles a PL/pgSQL function, and plans each of its statements, at
    /// their first run. So the session runs a whole release once, with a hand-over to a waiting candidate and the
    /// notifying trigger, on the empty key (which no lease has: Baton refuses empty names), in a subtransaction
    /// that it then rolls back: nothing it wrote stays, and its notification is never sent.
    func readyRelease() -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: """
                DO $$ BEGIN
                    INSERT INTO \(leases) (key, token, holder, metadata, ttl_ms, expires_at, updated_at)
                        VALUES ('', 1, '', NULL, 1, clock_timestamp() + interval '1 second', clock_timestamp());
                    INSERT INTO \(waiters) (key, holder, metadata, ttl_ms, expires_at)
                        VALUES ('', '', NULL, 1, clock_timestamp() + interval '1 second');
                    PERFORM "\(schema)".baton_release('', '', 1);
                    RAISE EXCEPTION USING ERRCODE = 'BR001';
                EXCEPTION WHEN SQLSTATE 'BR001' THEN NULL;
                END $$
                """)
    }

    /// Takes a holder's place out of the key's queue under the key's row lock (a term it may hold is left alone).
    func leaveQueue(key: String, holder: String) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(key)
        bindings.append(holder)
        return PostgresQuery(unsafeSQL: "SELECT \"\(schema)\".baton_leave($1, $2)", binds: bindings)
    }

    /// The key's live term, after handing a free key on; no row if none.
    func look(key: String) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(key)
        return PostgresQuery(unsafeSQL: "SELECT * FROM \"\(schema)\".baton_look($1)", binds: bindings)
    }
}
