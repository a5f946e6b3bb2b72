@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The driver of a ``LeaseStore`` in a PostgreSQL database: for teams that run PostgreSQL and nothing else.
///
/// ```swift
/// let store = LeaseStore(try PostgresLeaseStore(url: StoreURL("postgres://baton@db/app")))
/// ```
///
/// ## Whose clock decides expiry
///
/// The database server's: every statement reads `clock_timestamp()` once and judges expiry by it, in the same
/// statement that writes. No host's clock is ever compared with another's, so candidates on hosts with wrong
/// clocks still agree. The server receives a request after the client sent it, so a term granted by a request
/// sent at `t0` never ends before `t0 + ttl` — as long as the server's own clock is not stepped backwards or
/// forwards by more than the elector's safety margin while a term runs (PostgreSQL offers no monotonic clock
/// in SQL; keep the server's clock disciplined by NTP slewing, as is usual).
///
/// ## Atomicity
///
/// - `acquire` is one `INSERT … ON CONFLICT (key) DO UPDATE … RETURNING`: the row lock taken by the conflict
///   serializes concurrent acquirers, and each sees the row as the previous one left it. A free or expired key
///   gets a new term with the row's token plus one; the holder's own live term is renewed with its token; any
///   other holder's live term is left unchanged and returned, so the refused caller learns who won.
/// - `renew` and `release` are one `UPDATE` each, guarded by key, holder and token (and, for renew, expiry).
/// - Rounds run in one transaction: the round's row is locked (`SELECT … FOR UPDATE`), the same
///   ``RoundRules`` as every store decide, and the outcome is written before `COMMIT`.
/// - Presence is one statement per operation.
///
/// ## Fencing tokens
///
/// Each key has one row for ever: a release or an expiry clears the holder but keeps `token`, and the next term
/// gets `token + 1` under the row lock. Tokens thus never go back, also after a database restart (a committed
/// term is durable) — unless someone deletes rows by hand.
///
/// ## Changes: LISTEN/NOTIFY
///
/// A trigger on `baton_leases` sends a notification whenever a row gets a new term, a new holder (a release sets
/// none) or new metadata, whoever wrote it; PostgreSQL delivers it at commit, in commit order. Its payload on
/// `baton_states_<schema>` is the key with its new state (token, holder, ttl, metadata; see
/// ``PostgresStatePayload``). Each store instance opens one dedicated connection that `LISTEN`s on that channel
/// (from the first ``changes(key:)`` on) and hands the state to the subscribers of the key, which thus need no
/// read: a release costs the database the release and the next leader's own acquire, however many processes
/// follow the key. The trigger also sends the key alone on `baton_changes_<schema>`, the channel of Batons before
/// the states channel, so that they keep working beside this one. Expiries need no write: each subscription reads
/// again when the term's remaining time has passed. When the listening connection is lost, every subscriber is
/// woken (its read reports the store's failure, which ends its sequence), and after reconnecting, every
/// subscriber reads again, so no change is missed.
///
/// ## Table layout
///
/// In the configured schema (default `public`), readable with `psql`:
///
/// ```sql
/// CREATE TABLE baton_meta (name text PRIMARY KEY, value text NOT NULL);  -- 'schema_version' = '1'
/// CREATE TABLE baton_leases (           -- one row per key ever acquired; never deleted
///     key        text COLLATE "C" PRIMARY KEY,
///     token      bigint NOT NULL,       -- the last fencing token issued for the key
///     holder     text COLLATE "C",      -- NULL once released; the term is live while
///     metadata   text,                  --   holder IS NOT NULL AND expires_at > clock_timestamp()
///     ttl_ms     bigint,
///     expires_at timestamptz,           -- by the server's clock
///     updated_at timestamptz NOT NULL); -- the last write, for operators
/// CREATE TABLE baton_rounds (
///     system text COLLATE "C", round text COLLATE "C", PRIMARY KEY (system, round),
///     winner text COLLATE "C", completed_by text COLLATE "C",
///     expires_at timestamptz NOT NULL); -- end of retention ('-infinity': a placeholder, no record)
/// CREATE TABLE baton_presence (
///     group_name text COLLATE "C", member text COLLATE "C", PRIMARY KEY (group_name, member),
///     expires_at timestamptz NOT NULL);
/// CREATE TABLE baton_waiters (          -- the queue of candidates waiting for a key
///     key text COLLATE "C", holder text COLLATE "C", PRIMARY KEY (key, holder),
///     arrival bigint GENERATED ALWAYS AS IDENTITY,  -- the queue's order
///     metadata text, ttl_ms bigint NOT NULL,        -- what its term will be
///     expires_at timestamptz NOT NULL);            -- it leaves the queue then unless it asks again
/// -- plus indexes on expires_at and on (key, arrival), the function baton_leases_notify() and its trigger on
/// -- baton_leases, and the functions baton_acquire, baton_release, baton_look, baton_leave, baton_join and
/// -- baton_hand_on.
/// ```
///
/// For example, the live leaders:
/// `SELECT key, holder, token, metadata FROM baton_leases WHERE expires_at > clock_timestamp();`.
///
/// ## The queue
///
/// A waiting acquire (an elector's, a long poll's) that is refused puts its holder in `baton_waiters`, or keeps its
/// place there for one and a half ttl; electors and long polls ask again once per ttl while they wait. A free key
/// goes to the first live candidate in line: `baton_release` starts that candidate's term in the same statement
/// (with the ttl and metadata of its last waiting acquire; its own next acquire renews it, same token), and so
/// does whoever finds the key expired while candidates wait (an acquire, then answered with that candidate as
/// the leader, or a change feed's read). Each store instance runs one change feed per key, so a release wakes
/// one read per process and the next leader's acquire. `baton_waiters` and the functions are added to a
/// database of schema version 1 by the first store that starts; an earlier Baton keeps working beside: its
/// candidates never queue and take a key only once the queue is empty.
/// Names are compared byte for byte (`COLLATE "C"`). Expired round and presence rows are deleted by claims
/// and heartbeats, at most once a minute per store instance (by the store's clock).
///
/// ## Errors and cancellation
///
/// The ``LeaseStore`` front checks every argument and bounds every request by its deadline; this driver only
/// refuses metadata with a NUL byte (``BatonError/Code/invalidArgument``: PostgreSQL's `text` cannot hold it).
/// A refused password is ``BatonError/Code/unauthorized``; any other failure of the server or the connection
/// is ``BatonError/Code/storeUnavailable``. Messages name the URL with its password redacted, never the
/// password. A request whose task is cancelled (at the front's deadline, or by its caller) stops waiting for a
/// connection, or closes the connection its statement runs on, so it ends at once even on a connection that
/// died silently; the statement may or may not have been applied.
///
/// ## Lifecycle
///
/// ``init(url:configuration:logger:clock:)`` only reads the URL and the configuration. ``run()`` does the
/// rest, in child tasks it owns: it connects once to create the tables if needed (a wrong password or an
/// unreachable server makes `run()` throw), and from then on answers requests. With one connection
/// (``Configuration/maximumConnections`` 1) it runs the `LISTEN` connection at once and requests run
/// on it, one at a time; with a pool, requests run on the pool, and the `LISTEN` connection starts at the first
/// ``changes(key:)``. Requests made while `run()` is starting
/// wait until it is ready. When `run()` is cancelled or shut down gracefully, it ends every ``changes(key:)``
/// sequence, closes every connection and returns; later requests throw ``BatonError/Code/storeUnavailable``.
/// A store runs once.
public final class PostgresLeaseStore: LeaseStoreDriver {
    /// `postgres`.
    public var storeName: String { "postgres" }

    /// The configuration the store was made with (with the URL's `schema`, if it named one).
    public let configuration: Configuration

    /// The store URL with its password redacted.
    public let redactedURL: String

    let schema: PostgresSchema
    /// Sends the renews that arrive together in one statement.
    let renewals = RequestBatcher<PostgresRenewal>()
    let logger: Logger
    let clock: BatonClock
    let signals: ChangeSignals
    /// The keys' states that notifications carried, for the change feeds.
    let states: PushedLeaderStates
    /// This store's waiting candidates, to take a term handed to one from its notification.
    let handedTerms: HandedTerms
    /// How many times change feeds read the database (for tests: a notification with a state spares the read).
    let feedLooks = Atomic<Int>(0)
    /// With one connection: how many leads were considered for readying the session, and how many readied it
    /// (for tests).
    let readyingLooks = Atomic<Int>(0)
    let readiedSessions = Atomic<Int>(0)
    /// One change feed per key for this instance's observers.
    let observations = SharedLeaderObservations()
    let state = Mutex(State())
    /// Where requests wait for ``run()`` and get its connections.
    let gate = ReadinessGate<PostgresConnections>()
    /// Asks ``run()`` to start the `LISTEN` connection (once; later asks are ignored).
    let listenRequests: AsyncStream<Void>.Continuation
    private let listenRequestStream: AsyncStream<Void>
    /// With one connection, tells ``run()`` that a holder leads through this store (``readyReleaseLater()``).
    private let leadings: AsyncStream<Void>.Continuation
    private let leadingStream: AsyncStream<Void>
    private let connectionConfiguration: PostgresConnection.Configuration
    private let clientConfiguration: PostgresClient.Configuration
    /// With one connection (``Configuration/maximumConnections`` 1), the loop it is made on, where requests run.
    private let sharedLoop: PostgresLoopExecutor?

    /// With one connection, the event loop of that connection: a request runs on the thread its answer arrives on.
    public var requestExecutor: (any TaskExecutor)? { sharedLoop }

    struct State {
        var runCalled = false
        /// When the last sweep of expired rows ran, on the store's clock.
        var lastSweep: Duration?
    }

    /// How often an instance deletes expired round and presence rows (during a claim or a heartbeat).
    static let sweepInterval: Duration = .seconds(60)

    /// A store on the database at `url`; ``run()`` connects to it.
    ///
    /// - Parameters:
    ///   - url: `postgres://[user[:password]@]host[:port][/database][?sslmode=...]` (also `postgresql://`); see
    ///     the query items below. The password never appears in messages or logs.
    ///   - configuration: schema, connection limits and the listener's checks. A `schema=NAME` query item in the
    ///     URL overrides ``Configuration/schema``.
    ///   - logger: where the store reports what it cannot report through an operation's error (the change
    ///     listener's reconnections), at debug level.
    ///   - clock: times the listener's keep-alive checks and reconnection backoff, the change feeds' expiry
    ///     timers and reads, and the sweeps (a `ManualClock` in tests). Expiry itself is the server's.
    ///
    /// Query items, as in libpq: `sslmode` (`disable`, `allow`, `prefer` — the default —, `require`,
    /// `verify-ca`, `verify-full`; only the last two check the server's certificate), `sslrootcert` (PEM file of
    /// trusted certificates; default the system's), `sslcert` and `sslkey` (a client certificate), `schema`,
    /// `application_name` (default `baton`), `pool_max_conns` (``Configuration/maximumConnections``),
    /// `pool_min_conns` (``Configuration/minimumConnections``).
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed URL or configuration, or certificate files
    ///   that cannot be read.
    public init<C: Clock>(
        url: StoreURL,
        configuration: Configuration = .init(),
        logger: Logger = Logger(label: "baton.postgres"),
        clock: C = ContinuousClock()
    ) throws where C.Duration == Duration {
        let settings = try PostgresConnectionSettings(url)
        var configuration = configuration
        if let schema = settings.schema { configuration.schema = schema }
        if let size = settings.maximumConnections { configuration.maximumConnections = size }
        if let count = settings.minimumConnections { configuration.minimumConnections = count }
        try configuration.validate()
        self.connectionConfiguration = try settings.connectionConfiguration(configuration)
        self.clientConfiguration = try settings.clientConfiguration(configuration)
        self.redactedURL = settings.redactedURL
        self.configuration = configuration
        self.schema = PostgresSchema(schema: configuration.schema)
        self.logger = logger
        self.clock = BatonClock(clock)
        let signals = ChangeSignals()
        self.signals = signals
        self.states = PushedLeaderStates(watched: { signals.subscribedKeys })
        self.handedTerms = HandedTerms(clock: self.clock)
        self.sharedLoop =
            configuration.maximumConnections == 1
            ? PostgresLoopExecutor(on: PostgresConnection.defaultEventLoopGroup.any()) : nil
        (listenRequestStream, listenRequests) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (leadingStream, leadings) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// How long after a holder starts to lead through a one-connection store its session is readied for the
    /// release: after the term's start, whose work (a `baton run` launching its command) it would slow down.
    static let readyingDelay: Duration = .milliseconds(100)

    /// A holder leads through this store: with one connection, ``run()`` readies the connection's session for
    /// the release a moment later (``readyReleases(_:)``), once per connection.
    func readyReleaseLater() {
        if sharedLoop != nil { leadings.yield() }
    }

    /// With one connection: once a holder leads, after ``readyingDelay``, the connection's session runs the
    /// release's functions once (``PostgresSchema/readyRelease()``), so that the release at the end of the term,
    /// on the handover's path, does not compile them. Once per connection (a new one after a reconnection is
    /// readied at the next lead); a failure only costs that release the compiling.
    private func readyReleases(_ shared: PostgresSharedConnection) async {
        for await _ in leadingStream {
            do {
                try await clock.sleep(for: Self.readyingDelay)
            } catch {
                return
            }
            defer { readyingLooks.add(1, ordering: .relaxed) }
            guard shared.claimReadying() else { continue }
            let query = schema.readyRelease()
            do {
                try await perform("readying the release", timeout: .seconds(5)) { connection, logger in
                    _ = try await connection.query(query, logger: logger).collect()
                }
                readiedSessions.add(1, ordering: .relaxed)
            } catch {
                logger.debug(
                    "baton: readying the PostgreSQL session for a release failed",
                    metadata: ["url": "\(redactedURL)", "error": "\(error)"]
                )
            }
        }
    }

    // MARK: Lifecycle

    /// Runs the store: its connection pool, the schema setup, and (from the first ``changes(key:)`` on) its
    /// `LISTEN` connection, until the task is cancelled or a graceful shutdown begins. Then ends every
    /// ``changes(key:)`` sequence, closes every connection, and returns.
    ///
    /// A server that cannot be reached yet is tried again until it answers (requests fail meanwhile with
    /// `storeUnavailable` or `timeout` naming why), so the store comes up when its database does.
    /// - Throws: ``BatonError`` `unauthorized` if the server refuses the credentials; `storeUnavailable` if the
    ///   tables cannot be set up (or were written by a newer Baton); `invalidArgument` if the store ran before.
    public func run() async throws {
        let ranBefore = state.withLock { state in
            defer { state.runCalled = true }
            return state.runCalled
        }
        if ranBefore { throw BatonError.invalidArgument("the PostgreSQL store \(redactedURL) runs once") }
        defer {
            gate.end(stopped(nil))
            listenRequests.finish()
            leadings.finish()
            signals.finishAll()
        }
        // The pool logs every failed connection attempt at info level; the store reports failures through the
        // operations' errors instead, so the pool's background messages are shown from warning level up.
        var backgroundLogger = logger
        backgroundLogger.logLevel = max(logger.logLevel, .warning)
        let shared = sharedLoop.map { PostgresSharedConnection(executor: $0) }
        defer { shared?.close(stopped(nil)) }
        let client =
            shared == nil
            ? PostgresClient(configuration: clientConfiguration, backgroundLogger: backgroundLogger) : nil
        try await withThrowingDiscardingTaskGroup { group in
            if let client { group.addTask { await client.run() } }
            do {
                try await prepareSchemaRetrying()
            } catch {
                group.cancelAll()
                if Task.isCancelled { return }
                if let failure = error as? BatonError { gate.end(failure) }
                throw error
            }
            var listener = changeListener()
            if let shared {
                // One connection for everything: the listener's, from the start.
                listener.shared = shared
                group.addTask { [listener] in await listener.run() }
                group.addTask { await self.readyReleases(shared) }
                gate.open(.shared(shared))
                await withGracefulShutdownHandler {
                    for await _ in listenRequestStream {}
                } onGracefulShutdown: { [listenRequests] in
                    listenRequests.finish()
                }
            } else if let client {
                gate.open(.pool(client))
                await serveListenRequests(listener, in: &group)
            }
            gate.end(stopped(nil))
            group.cancelAll()
        }
    }

    /// Prepares the schema, trying again while the server cannot be reached (after a pause of 200 ms doubling up
    /// to 5 s on the store's clock; requests meanwhile fail at once with the last failure), so a store started
    /// before its database comes up when the database does.
    /// - Throws: what does not heal by waiting: refused credentials, tables of a newer Baton;
    ///   `CancellationError` when the task is cancelled.
    private func prepareSchemaRetrying() async throws {
        var pause = Duration.milliseconds(200)
        while true {
            do {
                return try await prepareSchema()
            } catch {
                try Task.checkCancellation()
                let failure = Self.storeError(error, operation: "opening the store", url: redactedURL)
                guard Self.healsByWaiting(error), let failure = failure as? BatonError,
                    failure.code == .storeUnavailable || failure.code == .timeout
                else { throw failure }
                var retrying = failure
                retrying.message += "; trying again in \(pause)"
                gate.failing(retrying)
                logger.debug(
                    "baton: the PostgreSQL store cannot start yet",
                    metadata: ["url": "\(redactedURL)", "error": "\(failure)", "retry_in": "\(pause)"]
                )
                try await clock.sleep(for: pause)
                pause = min(pause * 2, .seconds(5))
            }
        }
    }

    /// Whether a failure to start may pass once the server is up: a server that cannot be reached, closes the
    /// connection, is starting or shutting down, or has no free connection. Not: what the schema check itself
    /// throws (tables of another version), TLS failures (a certificate that is not trusted, a server without
    /// TLS), refused credentials and other errors the server answers with.
    static func healsByWaiting(_ error: any Error) -> Bool {
        switch error {
        case is BatonError:
            return false
        case let error as PSQLError:
            if let underlying = error.underlying, underlying is NIOSSLError || underlying is NIOSSLExtraError {
                return false
            }
            switch error.code {
            case .connectionError, .serverClosedConnection, .uncleanShutdown:
                return true
            case .server:
                // Starting up, shutting down, too many connections, or a connection-class error (08...).
                let state = error.serverInfo?[.sqlState] ?? ""
                return ["57P01", "57P02", "57P03", "53300"].contains(state) || state.hasPrefix("08")
            default:
                return false
            }
        case is NIOSSLError, is NIOSSLExtraError:
            return false
        default:
            // A connection that could not be made or timed out (NIO's errors, the connect deadline).
            return true
        }
    }

    /// Connects once and creates the tables if they are missing (idempotent; any number of processes may do it
    /// at once).
    private func prepareSchema() async throws {
        let connection = try await PostgresConnection.connect(
            configuration: connectionConfiguration,
            id: 0,
            logger: logger
        )
        do {
            try await schema.prepare(connection, logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    /// The store's change listener.
    private func changeListener() -> PostgresChangeListener {
        PostgresChangeListener(
            settings: connectionConfiguration,
            channel: schema.statesChannel,
            keepAlive: configuration.listenerKeepAlive,
            keepAliveTimeout: configuration.listenerKeepAliveTimeout,
            clock: clock,
            signals: signals,
            states: states,
            logger: logger,
            redactedURL: redactedURL,
            loop: sharedLoop?.loop
        )
    }

    /// Starts the `LISTEN` connection in `group` at the first request, until the task is cancelled or a
    /// graceful shutdown begins.
    private func serveListenRequests(
        _ listener: PostgresChangeListener, in group: inout ThrowingDiscardingTaskGroup<any Error>
    ) async {
        let requests = listenRequests
        await withGracefulShutdownHandler {
            var listening = false
            for await _ in listenRequestStream where !listening {
                listening = true
                group.addTask { await listener.run() }
            }
        } onGracefulShutdown: {
            requests.finish()
        }
    }

    /// The connections, once ``run()`` is ready.
    /// - Throws: ``BatonError`` `storeUnavailable` if the store has stopped or could not start.
    func ready(for operation: String) async throws -> PostgresConnections {
        do {
            return try await gate.value()
        } catch var error as BatonError {
            error.message = "\(operation) failed: \(error.message)"
            throw error
        }
    }

    /// The error of a request made after ``run()`` ended.
    func stopped(_ operation: String?) -> BatonError {
        let prefix = operation.map { "\($0) failed: " } ?? ""
        return .storeUnavailable("\(prefix)the PostgreSQL store \(redactedURL) has stopped (its run() returned)")
    }

    // MARK: Helpers

    /// How long a change feed's read may take: as long as a check of the listener's connection (interval and
    /// timeout).
    var feedReadTimeout: Duration {
        configuration.listenerKeepAlive + configuration.listenerKeepAliveTimeout
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        max(duration.batonMilliseconds, 1)
    }

    static func validate(metadata: String?) throws(BatonError) {
        if let metadata, metadata.utf8.contains(0) {
            throw .invalidArgument("metadata contains a NUL character, which PostgreSQL text cannot hold")
        }
    }
}
