import ArgumentParser
import Baton
import BatonServer
import BatonStores
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

extension BatonCommand {
    /// `baton serve`: the HTTP election service.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the HTTP election service: gone-compatible rounds (v1), JSON leases (v2), metrics.",
            discussion: """
                Every option can also be set in the environment: BATON_HOST, BATON_PORT, BATON_STORE, \
                BATON_STORE_FILE, BATON_AUTH_TOKEN_FILE, BATON_ACCESS_FILE, BATON_TLS_CERT, BATON_TLS_KEY, \
                BATON_LOG_LEVEL (an option wins over the environment). Logs one line when it listens, with the \
                address and the store URL (passwords shown as ***). SIGTERM or SIGINT stops it gracefully: it \
                stops accepting connections, finishes the requests in flight, answers waiting long polls and ends \
                event streams, then closes the store.

                Access: --auth-token-file gives one bearer token that may do everything; --access-file gives \
                tokens scoped to key prefixes, a JSON file {"tokens": [{"name": "team-a", "sha256": "<hex>", \
                "read": ["shared/"], "write": ["team-a/"]}]} (see docs/http.md); both may be given. The access \
                file must not be writable by group or others, nor readable by them if it holds a token in the \
                clear ("token" rather than "sha256"). SIGHUP reads the access file again (an invalid file is not \
                used: the previous tokens stay, and the error is logged). Send tokens over HTTPS only: --tls-cert \
                and --tls-key.
                """
        )

        @OptionGroup var options: StoreOptions

        @OptionGroup(title: "Limits") var limitOptions: ServeLimitOptions

        @Option(help: ArgumentHelp("The address to listen on (default: $BATON_HOST, else 0.0.0.0).", valueName: "host"))
        var host: String?

        @Option(help: ArgumentHelp("The TCP port, 0 for any (default: $BATON_PORT, else 8080).", valueName: "port"))
        var port: Int?

        @Option(
            name: .customLong("auth-token-file"),
            help: ArgumentHelp(
                "A file holding the bearer token every request but /, /alive and /healthz must carry "
                    + "(default: $BATON_AUTH_TOKEN_FILE, else no authentication).",
                valueName: "path"
            )
        )
        var authTokenFile: String?

        @Option(
            name: .customLong("access-file"),
            help: ArgumentHelp(
                "A JSON file of bearer tokens, each with the key prefixes it may read and write "
                    + "(default: $BATON_ACCESS_FILE).",
                valueName: "path"
            )
        )
        var accessFile: String?

        @Option(
            name: .customLong("tls-cert"),
            help: ArgumentHelp(
                "Serve HTTPS with the certificate chain in this PEM file, the server's certificate first "
                    + "(default: $BATON_TLS_CERT); needs --tls-key.",
                valueName: "path"
            )
        )
        var tlsCertificate: String?

        @Option(
            name: .customLong("tls-key"),
            help: ArgumentHelp(
                "The unencrypted PEM private key of --tls-cert (default: $BATON_TLS_KEY).", valueName: "path")
        )
        var tlsKey: String?

        @Option(help: ArgumentHelp("How long v1 round records are kept: 2h, 7d.", valueName: "time"))
        var retention: String = "7d"

        @Option(
            name: .customLong("log-level"),
            help: ArgumentHelp(
                "trace, debug, info, notice, warning, error or critical (default: $BATON_LOG_LEVEL, else notice).",
                valueName: "level"
            )
        )
        var logLevel: String?

        func run() async throws {
            try await CommandOutcome.run {
                let environment = ProcessInfo.processInfo.environment
                let settings = try ServeSettings(
                    host: host, port: port, authTokenFile: authTokenFile, logLevel: logLevel,
                    environment: environment)
                let access = try ServeSettings.accessPolicy(file: accessFile, environment: environment)
                let tls = try ServeSettings.tls(certificate: tlsCertificate, key: tlsKey, environment: environment)
                let retention = try parseDurationOption(retention, option: "--retention")
                let limits = try limitOptions.limits()
                let url = try options.storeURL()

                let logger = {
                    var logger = Logger(label: "baton.serve")
                    logger.logLevel = settings.logLevel
                    return logger
                }()
                let registry = PrometheusCollectorRegistry()
                MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
                ServeLimitOptions.raiseOpenFileLimit(for: limits, logger: logger)

                let store = try await LeaseStores.open(url)
                let server = BatonHTTPServer(
                    store: store,
                    configuration: .init(
                        host: settings.host, port: settings.port, authToken: settings.authToken,
                        access: access?.policy, tls: tls, retention: retention, limits: limits),
                    registry: registry,
                    logger: logger
                )
                let listening = Atomic<Bool>(false)
                let authentication = ServeSettings.describeAuthentication(
                    token: settings.authToken != nil, access: access)
                let scheme = tls == nil ? "http" : "https"
                let application = server.makeApplication { channel in
                    listening.store(true, ordering: .relaxed)
                    let address = channel.localAddress.map(Self.describe) ?? "\(settings.host):\(settings.port)"
                    logger.notice(
                        "listening on \(scheme)://\(address), store \(url), authentication \(authentication)"
                    )
                }
                var services: [any Service] = [store, application]
                if let access {
                    services.insert(AccessFileReloader(path: access.path, server: server, logger: logger), at: 1)
                }
                var groupConfiguration = ServiceGroupConfiguration(
                    // Stopped in reverse order: the HTTP server first, the store last.
                    services: services,
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
                groupConfiguration.maximumGracefulShutdownDuration = .seconds(30)
                do {
                    try await ServiceGroup(configuration: groupConfiguration).run()
                } catch {
                    if !listening.load(ordering: .relaxed), !(error is BatonError) {
                        throw BatonError.invalidArgument(
                            "cannot listen on \(settings.host):\(settings.port): \(error)")
                    }
                    throw error
                }
                logger.notice("stopped")
                return CommandOutcome.success
            }
        }

        private static func describe(_ address: SocketAddress) -> String {
            guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
            if case .v6 = address { return "[\(ip)]:\(port)" }
            return "\(ip):\(port)"
        }
    }
}

/// The settings of `baton serve` that come from an option or else the environment.
struct ServeSettings {
    var host: String
    var port: Int
    var authToken: String?
    var logLevel: Logger.Level

    /// Resolves each setting: the option if given, else a non-empty environment variable, else the default.
    /// - Throws: ``BatonError`` `invalidArgument` for a bad port or log level, or a token file that cannot be read
    ///   or is empty. The token itself never appears in a message.
    init(
        host: String?,
        port: Int?,
        authTokenFile: String?,
        logLevel: String?,
        environment: [String: String]
    ) throws(BatonError) {
        func value(_ option: String?, _ variable: String) -> String? {
            option ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        self.host = value(host, "BATON_HOST") ?? "0.0.0.0"
        if let port {
            self.port = port
        } else if let text = value(nil, "BATON_PORT") {
            guard let parsed = Int(text) else { throw .invalidArgument("BATON_PORT is not a number: \(text)") }
            self.port = parsed
        } else {
            self.port = 8080
        }
        guard (0...65535).contains(self.port) else {
            throw .invalidArgument("--port must be from 0 to 65535, got \(self.port)")
        }
        let levelText = value(logLevel, "BATON_LOG_LEVEL") ?? "notice"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw .invalidArgument(
                "--log-level must be trace, debug, info, notice, warning, error or critical, got \(levelText)")
        }
        self.logLevel = level
        if let path = value(authTokenFile, "BATON_AUTH_TOKEN_FILE") {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw .invalidArgument("--auth-token-file: cannot read \(path)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw .invalidArgument("--auth-token-file: \(path) is not UTF-8 text")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw .invalidArgument("--auth-token-file: \(path) is empty") }
            guard !token.contains(where: { $0.isWhitespace || $0.isNewline }) else {
                throw .invalidArgument("--auth-token-file: the token in \(path) must be one word")
            }
            self.authToken = token
        } else {
            self.authToken = nil
        }
    }
}
