import Baton
import PostgresNIO

/// Where and how to connect, read from a `postgres://` store URL.
///
/// `postgres://[user[:password]@]host[:port][/database][?name=value&...]`, also `postgresql://`. The query
/// items, as in libpq's connection URIs:
///
/// | item | meaning |
/// |---|---|
/// | `sslmode` | `disable`; `allow` or `prefer` (the default: TLS if the server offers it, unverified); `require` (TLS, unverified); `verify-ca` (TLS, certificate checked against the trust roots); `verify-full` (also the host name) |
/// | `sslrootcert` | a PEM file of trusted certificates for `verify-ca`/`verify-full` (default: the system's) |
/// | `sslcert`, `sslkey` | a PEM client certificate and its key, for servers that ask for one |
/// | `schema` | ``PostgresLeaseStore/Configuration/schema`` |
/// | `application_name` | shown in `pg_stat_activity` (default `baton`) |
/// | `pool_max_conns` | ``PostgresLeaseStore/Configuration/maximumConnections``, 1 to 1000 (the name is pgx's) |
/// | `pool_min_conns` | ``PostgresLeaseStore/Configuration/minimumConnections``, 0 to `pool_max_conns` − 1 (pgx's name) |
///
/// The user defaults to `postgres`, the database to the server's default (the user's name).
struct PostgresConnectionSettings: Sendable {
    enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case allow
        case prefer
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String?
    var sslMode: SSLMode
    var rootCertificatePath: String?
    var certificatePath: String?
    var keyPath: String?
    var schema: String?
    /// The pool's size, if the URL gives one.
    var maximumConnections: Int?
    /// The connections the pool keeps open, if the URL says.
    var minimumConnections: Int?
    var applicationName: String
    /// The URL with its password redacted, for messages.
    var redactedURL: String

    static let knownItems = [
        "sslmode", "sslrootcert", "sslcert", "sslkey", "schema", "application_name", "pool_max_conns",
        "pool_min_conns",
    ]

    init(_ url: StoreURL) throws(BatonError) {
        try PostgresLeaseStore.checkShape(of: url)
        guard url.hosts.count == 1, let host = url.hosts.first else {
            throw .invalidArgument("a postgres:// store URL names exactly one host: \(url)")
        }
        self.host = host.name
        self.port = host.port ?? 5432
        self.user = url.user ?? "postgres"
        self.password = url.password
        var database = url.path
        while database.hasPrefix("/") { database.removeFirst() }
        if database.contains("/") {
            throw .invalidArgument("the path of a postgres:// store URL is one database name: \(url)")
        }
        self.database = database.isEmpty ? nil : database
        self.redactedURL = url.description
        self.sslMode = .prefer
        self.applicationName = "baton"
        var seen: Set<String> = []
        for item in url.queryItems {
            guard Self.knownItems.contains(item.name) else {
                throw .invalidArgument(
                    "unknown query item \(item.name.debugDescription) in the postgres:// store URL; known: "
                        + Self.knownItems.joined(separator: ", ")
                )
            }
            guard seen.insert(item.name).inserted else {
                throw .invalidArgument("the query item \(item.name) appears twice in the postgres:// store URL")
            }
            switch item.name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: item.value) else {
                    throw .invalidArgument(
                        "sslmode=\(item.value.prefix(40)) is not one of "
                            + SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                    )
                }
                sslMode = mode
            case "sslrootcert": rootCertificatePath = try Self.path(item)
            case "sslcert": certificatePath = try Self.path(item)
            case "sslkey": keyPath = try Self.path(item)
            case "schema":
                try PostgresLeaseStore.Configuration.validate(schema: item.value)
                schema = item.value
            case "pool_max_conns":
                guard let size = Int(item.value), (1...1000).contains(size) else {
                    throw .invalidArgument(
                        "pool_max_conns=\(item.value.prefix(40)) in the postgres:// store URL is not a number "
                            + "from 1 to 1000"
                    )
                }
                maximumConnections = size
            case "pool_min_conns":
                guard let count = Int(item.value), (0...999).contains(count) else {
                    throw .invalidArgument(
                        "pool_min_conns=\(item.value.prefix(40)) in the postgres:// store URL is not a number "
                            + "from 0 to 999"
                    )
                }
                minimumConnections = count
            default:
                applicationName = item.value
            }
        }
        if (certificatePath == nil) != (keyPath == nil) {
            throw .invalidArgument("a postgres:// store URL with sslcert needs sslkey too, and the other way round")
        }
        if sslMode == .disable, rootCertificatePath != nil || certificatePath != nil {
            throw .invalidArgument("sslmode=disable contradicts sslrootcert/sslcert in the postgres:// store URL")
        }
    }

    private static func path(_ item: StoreURL.QueryItem) throws(BatonError) -> String {
        if item.value.isEmpty { throw .invalidArgument("the query item \(item.name) needs a file path") }
        return item.value
    }

    /// How long closing a TLS connection waits for the server's close_notify before the socket closes (NIOSSL's
    /// default is 5 s). A request cancelled on a silent connection closes it, and until the socket is closed the
    /// pool goes on lending the connection, whose every query fails at once: a server that is alive answers
    /// within a round trip, and one that is silent must not keep the connection half-closed for long.
    static let tlsShutdownTimeout = TimeAmount.milliseconds(250)

    /// The TLS configuration for the mode, or nil for `disable`.
    /// - Throws: ``BatonError`` `invalidArgument` if a certificate or key file cannot be read.
    func tlsConfiguration() throws(BatonError) -> TLSConfiguration? {
        if sslMode == .disable { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.shutdownTimeout = Self.tlsShutdownTimeout
        switch sslMode {
        case .verifyFull: tls.certificateVerification = .fullVerification
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        default: tls.certificateVerification = .none
        }
        if let rootCertificatePath {
            tls.trustRoots = .file(rootCertificatePath)
        }
        if let certificatePath, let keyPath {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            } catch {
                throw .invalidArgument("cannot read the client certificate or key (sslcert/sslkey): \(error)")
            }
        }
        return tls
    }

    /// The configuration of the pool of ``PostgresLeaseStore``.
    func clientConfiguration(_ configuration: PostgresLeaseStore.Configuration) throws(BatonError)
        -> PostgresClient.Configuration
    {
        let tls: PostgresClient.Configuration.TLS
        switch (sslMode, try tlsConfiguration()) {
        case (.disable, _), (_, nil): tls = .disable
        case (.allow, let config?), (.prefer, let config?): tls = .prefer(config)
        case (_, let config?): tls = .require(config)
        }
        var client = PostgresClient.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: database,
            tls: tls
        )
        client.options.connectTimeout = configuration.connectTimeout
        client.options.maximumConnections = configuration.maximumConnections
        client.options.minimumConnections = configuration.minimumConnections
        // No keep-alive queries on idle connections: postgres-nio runs them without a timeout, and a connection
        // that died silently stays busy with its unanswered one for good while operations queue for a connection
        // (seen: a waiting candidate's reads stalled behind two such connections). A dead connection is found by
        // the next operation on it instead, whose deadline closes it (a change feed's read has a short one).
        // postgres-nio sets no TCP keep-alive and offers no socket option to set it.
        client.options.keepAliveBehavior = nil
        client.options.additionalStartupParameters = [("application_name", applicationName)]
        return client
    }

    /// The configuration of a single connection (schema setup and the change listener).
    func connectionConfiguration(_ configuration: PostgresLeaseStore.Configuration) throws(BatonError)
        -> PostgresConnection.Configuration
    {
        let tls: PostgresConnection.Configuration.TLS
        if let config = try tlsConfiguration() {
            let context: NIOSSLContext
            do {
                context = try NIOSSLContext(configuration: config)
            } catch {
                throw .invalidArgument("cannot set up TLS for the PostgreSQL store \(redactedURL): \(error)")
            }
            tls = sslMode == .allow || sslMode == .prefer ? .prefer(context) : .require(context)
        } else {
            tls = .disable
        }
        var connection = PostgresConnection.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: database,
            tls: tls
        )
        connection.options.connectTimeout = .nanoseconds(configuration.connectTimeout.batonNanoseconds)
        connection.options.additionalStartupParameters = [("application_name", applicationName)]
        return connection
    }
}
