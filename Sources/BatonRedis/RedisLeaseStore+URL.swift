import Baton

extension RedisLeaseStore: URLOpenableStore {
    /// `redis`, and `rediss` for TLS.
    public static let urlSchemes = ["redis", "rediss"]
    /// One node, or several for a Redlock quorum.
    public static let urlForms = ["redis://[user:pass@]host:port[/db]", "redis://h1:p1,h2:p2,h3:p3", "rediss://..."]

    /// A store for `url` with the default configuration (see ``init(url:configuration:eventLoopGroup:)``).
    public static func open(_ url: StoreURL) throws -> RedisLeaseStore { try RedisLeaseStore(url: url) }

    /// Checks what every Redis URL must be: a redis scheme, hosts, and a path that is at most a database number.
    static func checkShape(of url: StoreURL) throws(BatonError) {
        let forms = urlForms.joined(separator: " or ")
        guard urlSchemes.contains(url.scheme) else {
            throw .invalidArgument("\(url) is not a redis:// or rediss:// URL")
        }
        guard url.hasAuthority, !url.hosts.isEmpty else {
            throw .invalidArgument("the \(url.scheme): store URL needs // and a host, as in \(forms)")
        }
        let path = url.path
        if !(path.isEmpty || path == "/" || (path.hasPrefix("/") && path.dropFirst().allSatisfy(\.isWholeNumber))) {
            throw .invalidArgument(
                "the path of a \(url.scheme): store URL is a database number, as in /0: \(forms)")
        }
    }
}

extension StoreURL {
    /// Whether the URL asks for TLS (`rediss`, `etcds`).
    var usesTLS: Bool { scheme == "rediss" }
}
