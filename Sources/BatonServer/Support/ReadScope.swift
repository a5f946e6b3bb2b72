@_spi(BatonStoreKit) import Baton

/// What a caller may read: every name, or only the names (lease keys, round systems) that start with one of a
/// few prefixes. Listings show only what the scope allows.
///
/// The request context carries one (``BatonRequestContext/readScope``), ``everything`` unless a middleware
/// narrows it for the caller (authentication that maps a token to the prefixes it may read).
public struct ReadScope: Sendable, Hashable {
    /// The prefixes readable, or nil for everything.
    public let prefixes: [String]?

    /// Every name.
    public static let everything = ReadScope(prefixes: nil)

    /// The names that start with one of `prefixes` (byte by byte); an empty prefix allows everything, no
    /// prefixes allow nothing.
    public init(prefixes: [String]?) {
        self.prefixes = prefixes
    }

    /// Whether `name` may be read.
    public func allows(_ name: String) -> Bool {
        guard let prefixes else { return true }
        return prefixes.contains { ListingLimits.key(name, hasPrefix: $0) }
    }

    /// The prefixes to ask the store for so that a listing under `prefix` sees exactly the readable names: the
    /// requested prefix itself where a readable prefix covers it, else the readable prefixes inside it; none
    /// overlapping another.
    public func storePrefixes(within prefix: String) -> [String] {
        guard let prefixes else { return [prefix] }
        if prefixes.contains(where: { ListingLimits.key(prefix, hasPrefix: $0) }) { return [prefix] }
        let inside = Set(prefixes.filter { ListingLimits.key($0, hasPrefix: prefix) })
        return inside.filter { candidate in
            !inside.contains { $0 != candidate && ListingLimits.key(candidate, hasPrefix: $0) }
        }
        .sorted(by: ListingLimits.precedes)
    }
}
