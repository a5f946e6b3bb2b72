import Baton

extension SQLiteLeaseStore: URLOpenableStore {
    /// `sqlite`.
    public static let urlSchemes = ["sqlite"]
    /// A file, relative to the working directory or absolute.
    public static let urlForms = ["sqlite:PATH (e.g. sqlite:baton.db or sqlite:/var/lib/baton/baton.db)"]

    /// A store on the file `url` names, with the default configuration.
    public static func open(_ url: StoreURL) async throws -> SQLiteLeaseStore {
        try await SQLiteLeaseStore(path: path(of: url))
    }

    /// The file of a `sqlite:` URL: `sqlite:PATH`, or `sqlite:///abs/path` with an empty authority.
    static func path(of url: StoreURL) throws(BatonError) -> String {
        let example = "write sqlite:PATH, e.g. sqlite:baton.db or sqlite:/var/lib/baton/baton.db"
        guard urlSchemes.contains(url.scheme) else {
            throw .invalidArgument("\(url) is not a sqlite: URL; \(example)")
        }
        if url.hasAuthority, !url.hosts.isEmpty || url.user != nil || url.password != nil {
            throw .invalidArgument("a sqlite: store URL names a file, not a host; \(example)")
        }
        if url.path.isEmpty {
            throw .invalidArgument("the sqlite: store URL has an empty path; \(example)")
        }
        if url.path.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw .invalidArgument("the sqlite path contains a control character")
        }
        if let item = url.queryItems.first {
            throw .invalidArgument("a sqlite: store URL takes no query item \(item.name); \(example)")
        }
        return url.path
    }
}
