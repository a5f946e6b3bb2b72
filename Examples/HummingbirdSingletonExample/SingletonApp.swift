import Baton
import BatonStores
import ExampleSupport
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// A Hummingbird app meant to run as several replicas. Every replica serves HTTP; exactly one of them, the leader of
/// `examples/report-job`, runs the scheduled job. SIGTERM (or SIGINT) shuts a replica down gracefully: the HTTP
/// server stops, the job stops, and the elector resigns, so another replica takes over the job at once rather
/// than after the ttl.
///
/// ```
/// HummingbirdSingletonExample [--port 8080] [--store sqlite:baton.db] [--id ID] [--every 5s] [--ttl 10s]
/// ```
///
/// `--store` falls back to `BATON_STORE`, `--port` to `PORT`. `GET /` answers which replica leads the job and how
/// many times this replica ran it.
@main
struct SingletonApp {
    static func main() async throws {
        var logger = Logger(label: "singleton-app")
        logger.logLevel = .info
        let arguments = try ExampleArguments()
        let storeURL = try StoreURL(arguments.value("store", environment: "BATON_STORE", default: "sqlite:baton.db"))
        guard let port = Int(arguments.value("port", environment: "PORT", default: "8080")) else {
            throw BatonError.invalidArgument("--port must be a port number")
        }
        let holder = arguments.value("id", default: LeaderElector.defaultHolder)
        let every = try arguments.duration("every", default: "5s")
        let ttl = try arguments.duration("ttl", default: "10s")

        let store = try await LeaseStores.open(storeURL)
        let elector = try LeaderElector(
            store: store,
            key: "examples/report-job",
            holder: holder,
            configuration: ElectorConfiguration(ttl: ttl, metadata: "127.0.0.1:\(port)"),
            logger: logger
        )
        let job = ScheduledJob(elector: elector, every: every, logger: logger)

        let router = Router()
        router.get("/") { _, _ -> String in
            let leader =
                switch elector.role {
                case .leader(let lease): "this replica (\(holder), token \(lease.token))"
                case .follower(let info): info.map { "\($0.holder) at \($0.metadata ?? "?")" } ?? "nobody yet"
                case .detached: "unknown: the store cannot be reached"
                }
            return "leader: \(leader)\nruns here: \(job.runs)\n"
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port)),
            logger: logger
        )

        // Graceful shutdown runs in reverse order: the HTTP server stops, then the job, then the elector resigns
        // and releases, and the store stops last.
        let group = ServiceGroup(
            configuration: .init(
                services: [store, elector, job, app],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
