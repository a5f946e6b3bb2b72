/// A store that can be opened from a ``StoreURL``: the schemes it answers to, and how it reads a URL.
///
/// Each store module declares its own schemes and parses its own options, so the core knows no store; a program
/// that links several stores (the `baton` tool links them all through `BatonStores`) lists their types and opens
/// a URL with the one that declared its scheme:
///
/// ```swift
/// extension MyLeaseStore: URLOpenableStore {
///     public static let urlSchemes = ["mystore"]
///     public static let urlForms = ["mystore://host:port"]
///     public static func open(_ url: StoreURL) throws -> MyLeaseStore { try MyLeaseStore(url: url) }
/// }
/// ```
public protocol URLOpenableStore: LeaseStoreDriver {
    /// The lower-case schemes that name this store (`redis` and `rediss`), none shared with another store.
    static var urlSchemes: [String] { get }

    /// The URL forms this store takes, for help texts and error messages (`redis://[user:pass@]host:port[/db]`).
    static var urlForms: [String] { get }

    /// A store for `url`, whose scheme is one of ``urlSchemes``, with its default configuration, not yet running:
    /// no connection is made and no file is opened until the store runs.
    /// - Throws: ``BatonError`` `invalidArgument` naming what the store refuses in the URL (a missing host, a
    ///   path it does not take, an unknown query item) and the form it expects; `unauthorized` when credentials
    ///   the URL relies on are missing.
    static func open(_ url: StoreURL) async throws -> Self
}

extension MemoryLeaseStore: URLOpenableStore {
    /// `memory`.
    public static let urlSchemes = ["memory"]
    /// `memory:`.
    public static let urlForms = ["memory:"]

    /// An empty store; `memory:` takes nothing after the scheme.
    public static func open(_ url: StoreURL) throws -> MemoryLeaseStore {
        guard !url.hasAuthority || url.hosts.isEmpty, url.path.isEmpty, url.queryItems.isEmpty, url.user == nil,
            url.password == nil
        else {
            throw BatonError.invalidArgument("a memory: store URL takes nothing after the scheme; write memory:")
        }
        return MemoryLeaseStore()
    }
}
