import Baton

extension PostgresLeaseStore: URLOpenableStore {
    /// `postgres` and `postgresql`.
    public static let urlSchemes = ["postgres", "postgresql"]
    /// One server and database; `sslmode` and the other options as query items.
    public static let urlForms = ["postgres://user:pass@host:port/db[?sslmode=...]"]

    /// A store for `url` with the default configuration (see ``init(url:configuration:logger:clock:)``).
    public static func open(_ url: StoreURL) async throws -> PostgresLeaseStore {
        try PostgresLeaseStore(url: url)
    }

    /// Checks what every PostgreSQL URL must be: a postgres scheme and a host.
    static func checkShape(of url: StoreURL) throws(BatonError) {
        guard urlSchemes.contains(url.scheme) else {
            throw .invalidArgument("the PostgreSQL store needs a postgres:// URL, not \(url)")
        }
        guard url.hasAuthority, !url.hosts.isEmpty else {
            throw .invalidArgument("the \(url.scheme): store URL needs // and a host, as in \(urlForms[0])")
        }
    }
}
