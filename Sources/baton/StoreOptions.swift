import ArgumentParser
import Baton
import BatonStores
import Foundation

/// The options every subcommand shares: which store to use.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The store: memory:, sqlite:PATH, ... (default: $BATON_STORE, else \(LeaseStores.defaultURL)). "
                + "A URL with a password shows in ps: use --store-file.",
            valueName: "url"
        )
    )
    var store: String?

    @Option(
        name: .customLong("store-file"),
        help: ArgumentHelp(
            "A file holding the store URL, e.g. one with a password (default: $BATON_STORE_FILE).",
            valueName: "path"
        )
    )
    var storeFile: String?

    /// The store URL: `--store`, else `--store-file`'s, else a non-empty `BATON_STORE`, else `BATON_STORE_FILE`'s,
    /// else `sqlite:baton.db`.
    func storeURL() throws(BatonError) -> StoreURL {
        try Self.storeURL(option: store, file: storeFile, environment: ProcessInfo.processInfo.environment)
    }

    /// The store URL from the value of `--store`, else the file of `--store-file`, else a non-empty `BATON_STORE`
    /// in `environment`, else the file a non-empty `BATON_STORE_FILE` names, else `sqlite:baton.db`. A file holds
    /// the URL alone; spaces and line ends around it are ignored.
    /// - Throws: ``BatonError`` `invalidArgument` for a malformed URL or an unknown scheme (starting with
    ///   `--store: `, or with `--store-file PATH: ` for a URL from a file; the password is never shown), a file that
    ///   cannot be read or is empty, or both forms given together (`--store` and `--store-file`, or `BATON_STORE`
    ///   and `BATON_STORE_FILE`).
    static func storeURL(option: String?, file: String?, environment: [String: String]) throws(BatonError) -> StoreURL {
        func variable(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        switch (option, file) {
        case (.some, .some):
            throw .invalidArgument("--store and --store-file are both given; give one of them")
        case (.some(let text), nil):
            return try parse(text, source: "--store")
        case (nil, .some(let path)):
            return try parse(try read(path, source: "--store-file"), source: "--store-file \(path)")
        case (nil, nil):
            break
        }
        switch (variable("BATON_STORE"), variable("BATON_STORE_FILE")) {
        case (.some, .some):
            throw .invalidArgument("BATON_STORE and BATON_STORE_FILE are both set; set one of them")
        case (.some(let text), nil):
            return try parse(text, source: "--store")
        case (nil, .some(let path)):
            return try parse(try read(path, source: "BATON_STORE_FILE"), source: "BATON_STORE_FILE \(path)")
        case (nil, nil):
            return try parse(LeaseStores.defaultURL, source: "--store")
        }
    }

    private static func parse(_ text: String, source: String) throws(BatonError) -> StoreURL {
        do throws(BatonError) {
            let url = try StoreURL(text)
            _ = try LeaseStores.kind(for: url.scheme)
            return url
        } catch {
            throw .invalidArgument("\(source): \(error.message)")
        }
    }

    /// The URL in the file at `path`, without the spaces and line ends around it.
    private static func read(_ path: String, source: String) throws(BatonError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable" : "no such file"
            throw .invalidArgument("\(source) \(path): cannot read the file: \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .invalidArgument("\(source) \(path): the file is not UTF-8 text")
        }
        let url = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !url.isEmpty else {
            throw .invalidArgument("\(source) \(path): the file is empty; it must hold the store URL")
        }
        return url
    }

    /// The variables that give access to the store: where its URL is (`BATON_STORE`, `BATON_STORE_FILE`) and, for
    /// an `s3:` store, the AWS credentials it reads.
    static func credentialVariables(for url: StoreURL) -> [String] {
        let location = ["BATON_STORE", "BATON_STORE_FILE"]
        guard url.scheme == "s3" else { return location }
        return location + ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    }

    /// `environment` without ``credentialVariables(for:)``, unless `passCredentials`: what `baton run` hands its
    /// command. A store other than S3 leaves the AWS variables alone, as they are then the command's own.
    static func commandEnvironment(
        _ environment: [String: String],
        store url: StoreURL,
        passCredentials: Bool
    ) -> [String: String] {
        guard !passCredentials else { return environment }
        var environment = environment
        for name in credentialVariables(for: url) { environment[name] = nil }
        return environment
    }

    /// Opens the store for a process of one or a few keys (on PostgreSQL, one connection; see
    /// `LeaseStores.openForCandidate`), runs it while `body` runs with it, and stops it, also when `body` throws.
    ///
    /// Opening connects to nothing: a store that cannot be reached yet is reported by the operations `body`
    /// makes (which an elector tries again), and its `run()` keeps trying to connect.
    func withStore<Value>(_ body: (LeaseStore) async throws -> Value) async throws -> Value {
        try await LeaseStores.openForCandidate(try storeURL()).withRunning(body)
    }
}
