/// What one bearer token may do: the key prefixes it may read and the key prefixes it may write.
///
/// A key is *under* a prefix when the key's UTF-8 bytes start with the prefix's bytes, so `team-a/` covers
/// `team-a/db` but not `team-ab`, and the empty prefix covers every key. For the v1 round API the key is the
/// system name.
///
/// Writing implies reading: a token may read every key it may write, since taking a lease already tells who holds
/// it (a `409` names the leader) and a holder has to see its own lease.
///
/// | request | needs |
/// |---|---|
/// | `GET /v2/leases/{key}`, `GET /v2/leases/{key}/watch` | read `key` |
/// | `POST`, `PUT`, `DELETE /v2/leases/{key}` (acquire, also long polls; renew; release) | write `key` |
/// | `GET /api/v1/elected/…`, `GET /api/v1/completed/…` | read `system` |
/// | `GET /api/v1/elect/…`, `GET|POST /api/v1/complete/…` | write `system` |
/// | a listing | shows only what ``canRead(_:)`` allows |
/// | `/readyz`, `/metrics` | any valid token |
public struct AccessScope: Sendable, Hashable {
    /// A name for the token, for logs (never the token itself); nil for ``unrestricted``.
    public var name: String?
    /// The prefixes of the keys the token may read (besides those it may write).
    public var read: [String]
    /// The prefixes of the keys the token may write, and so also read.
    public var write: [String]

    /// Creates a scope.
    public init(name: String? = nil, read: [String] = [], write: [String] = []) {
        self.name = name
        self.read = read
        self.write = write
    }

    /// Every key, to read and write: the scope of a request when the service asks for no token, or of the single
    /// token of ``BatonHTTPServer/Configuration-swift.struct/authToken``.
    public static let unrestricted = AccessScope(name: nil, read: [""], write: [""])

    /// Whether the scope may write every key.
    public var isUnrestricted: Bool { write.contains("") }

    /// Whether the token may read `key` (it is under a read or a write prefix).
    public func canRead(_ key: String) -> Bool {
        canWrite(key) || read.contains { Self.key(key, isUnder: $0) }
    }

    /// Whether the token may write `key` (it is under a write prefix).
    public func canWrite(_ key: String) -> Bool {
        write.contains { Self.key(key, isUnder: $0) }
    }

    /// Whether the token may do `operation` on `key`.
    public func allows(_ operation: Operation, _ key: String) -> Bool {
        switch operation {
        case .read: canRead(key)
        case .write: canWrite(key)
        }
    }

    /// Every prefix the token may read (write prefixes included), without one that another already covers, in
    /// byte order.
    public var readablePrefixes: [String] {
        Self.minimal(read + write)
    }

    /// The prefixes to list so that a listing of the keys under `prefix` shows exactly the keys the token may read:
    /// every key under `prefix` that the token may read is under one of them, and every key under one of them is
    /// under `prefix` and readable. Empty when the token may read no key under `prefix`.
    ///
    /// For a token that reads `team-a/` and `shared/`: within `""` → `["shared/", "team-a/"]`; within `team-a/db`
    /// → `["team-a/db"]`; within `team-b/` → `[]`.
    public func readablePrefixes(within prefix: String) -> [String] {
        Self.minimal(
            readablePrefixes.compactMap { readable in
                if Self.key(prefix, isUnder: readable) { return prefix }
                if Self.key(readable, isUnder: prefix) { return readable }
                return nil
            })
    }

    /// Whether `key`'s UTF-8 bytes start with `prefix`'s.
    static func key(_ key: String, isUnder prefix: String) -> Bool {
        key.utf8.starts(with: prefix.utf8)
    }

    /// `prefixes` without duplicates and without a prefix that another one covers, in byte order.
    static func minimal(_ prefixes: [String]) -> [String] {
        let sorted = Set(prefixes).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var kept: [String] = []
        for prefix in sorted where !kept.contains(where: { key(prefix, isUnder: $0) }) {
            kept.append(prefix)
        }
        return kept
    }

    /// What a request does to a key.
    public enum Operation: String, Sendable, Hashable {
        /// Reads: a leader, a watch, a listing, a round's winner or completion.
        case read
        /// Changes: acquire, renew, release, claim a round, complete it.
        case write
    }
}
