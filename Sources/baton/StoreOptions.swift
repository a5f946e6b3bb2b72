import ArgumentParser
import Baton
import BatonStores
import Foundation

/// The options every subcommand shares: which store to use.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The store: memory:, sqlite:PATH, ... (default: $BATON_STORE, else \(LeaseStores.defaultURL)).",
            valueName: "url"
        )
    )
    var store: String?

    /// The store URL: `--store`, else a non-empty `BATON_STORE`, else `sqlite:baton.db`.
    func storeURL() throws(BatonError) -> StoreURL {
        try Self.storeURL(option: store, environment: ProcessInfo.processInfo.environment)
    }

    /// The store URL from the value of `--store`, if given, else a non-empty `BATON_STORE` in `environment`,
    /// else `sqlite:baton.db`.
    /// - Throws: ``BatonError`` `invalidArgument` starting with `--store: ` for a malformed URL or an unknown scheme.
    static func storeURL(option: String?, environment: [String: String]) throws(BatonError) -> StoreURL {
        let text = option ?? environment["BATON_STORE"].flatMap { $0.isEmpty ? nil : $0 } ?? LeaseStores.defaultURL
        do throws(BatonError) {
            let url = try StoreURL(text)
            _ = try LeaseStores.kind(for: url.scheme)
            return url
        } catch {
            throw .invalidArgument("--store: \(error.message)")
        }
    }

    /// Opens the store, runs it while `body` runs with it, and stops it, also when `body` throws.
    ///
    /// With `retrying`, a store that cannot be reached yet (`storeUnavailable`, `timeout`) is opened again, after
    /// a pause that doubles up to 5 s, until it answers (or a signal ends the process: nothing is held yet); each
    /// failure is reported on standard error. Any other error ends at once.
    func withStore<Value>(
        retrying: Bool = false,
        _ body: (LeaseStore) async throws -> Value
    ) async throws -> Value {
        let url = try storeURL()
        let store = retrying ? try await Self.openRetrying(url) : try await LeaseStores.open(url)
        return try await store.withRunning(body)
    }

    private static func openRetrying(_ url: StoreURL) async throws -> LeaseStore {
        var pause = Duration.milliseconds(200)
        while true {
            do {
                return try await LeaseStores.open(url)
            } catch let error as BatonError where error.code == .storeUnavailable || error.code == .timeout {
                CommandOutcome.printError(
                    "cannot open the store \(url): \(CommandOutcome.message(for: error)); --retry: trying again in \(pause)"
                )
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(5))
            }
        }
    }
}
