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
    /// Opening connects to nothing: a store that cannot be reached yet is reported by the operations `body`
    /// makes (which an elector tries again), and its `run()` keeps trying to connect.
    func withStore<Value>(_ body: (LeaseStore) async throws -> Value) async throws -> Value {
        try await LeaseStores.open(try storeURL()).withRunning(body)
    }
}
