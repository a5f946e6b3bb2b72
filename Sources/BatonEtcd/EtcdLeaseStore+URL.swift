import Baton

extension EtcdLeaseStore: URLOpenableStore {
    /// `etcd`, and `etcds` for TLS.
    public static let urlSchemes = ["etcd", "etcds"]
    /// One or more endpoints of one cluster.
    public static let urlForms = ["etcd://host:port[,host:port...]", "etcds://..."]

    /// A store for `url` with the default configuration (see ``init(url:configuration:)``).
    public static func open(_ url: StoreURL) throws -> EtcdLeaseStore { try EtcdLeaseStore(url: url) }

    /// Checks what every etcd URL must be: an etcd scheme, hosts, and no path.
    static func checkShape(of url: StoreURL) throws(BatonError) {
        let forms = urlForms.joined(separator: " or ")
        guard urlSchemes.contains(url.scheme) else {
            throw .invalidArgument("\(url) is not an etcd:// or etcds:// URL")
        }
        guard url.hasAuthority, !url.hosts.isEmpty else {
            throw .invalidArgument("the \(url.scheme): store URL needs // and a host, as in \(forms)")
        }
        if !(url.path.isEmpty || url.path == "/") {
            throw .invalidArgument("an \(url.scheme): store URL has no path: \(forms)")
        }
    }
}

extension StoreURL {
    /// Whether the URL asks for TLS (`etcds`).
    var usesTLS: Bool { scheme == "etcds" }
}
