import Baton
import BatonServer
import Logging
import ServiceLifecycle
import UnixSignals

/// Reads `baton serve`'s access file again on every SIGHUP and hands its tokens to the server. A file that has become
/// invalid (or too open) is not used: the previous tokens stay, and the error is logged. Ends at graceful shutdown.
struct AccessFileReloader: Service {
    let path: String
    let server: BatonHTTPServer
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let loaded = try ServeSettings.accessPolicy(file: path, environment: [:])
                server.reloadAccess(loaded?.policy ?? AccessPolicy(tokens: []))
                let count = loaded?.policy.entries.count ?? 0
                logger.notice("reloaded the access file \(path): \(count) token\(count == 1 ? "" : "s")")
            } catch {
                logger.error("the access file was not reloaded; the previous tokens stay: \(error.message)")
            }
        }
    }
}
