import Crypto
import Foundation

/// The bearer tokens the service accepts, each with its ``AccessScope``.
///
/// Tokens are kept only as SHA-256 digests: a request's token is hashed and compared with every entry's digest in
/// time that does not depend on where the digests differ, and no token is ever logged or printed.
///
/// The file `baton serve --access-file` reads (``init(json:)``):
///
/// ```json
/// {
///   "tokens": [
///     {"name": "team-a", "sha256": "<64 hex digits>", "read": ["shared/"], "write": ["team-a/"]},
///     {"name": "ops", "token": "a-long-random-string", "read": [""]}
///   ]
/// }
/// ```
///
/// Each entry has exactly one of `token` (the token itself) and `sha256` (the lower- or upper-case hex SHA-256 of
/// the token's UTF-8 bytes, e.g. `printf %s "$TOKEN" | sha256sum`), so the file need not hold a token in the clear;
/// `read` and `write` list key prefixes (`""` is every key; both default to none, which leaves `/readyz` and
/// `/metrics`); `name` (optional, default `tokens[N]`) names the token in logs.
public struct AccessPolicy: Sendable {
    /// One accepted token.
    public struct Entry: Sendable {
        /// What the token may do; its ``AccessScope/name`` names the token in logs.
        public var scope: AccessScope
        /// The SHA-256 digest of the token.
        let digest: [UInt8]
        /// Whether the file gave the token in the clear (rather than as `sha256`).
        let isClear: Bool
    }

    /// The accepted tokens, in the order given.
    public internal(set) var entries: [Entry]

    /// One token with full access: what ``BatonHTTPServer/Configuration-swift.struct/authToken`` means.
    public init(token: String) {
        entries = [Entry(scope: .unrestricted, digest: Self.digest(token), isClear: true)]
    }

    /// Tokens, each with its scope (the scope's name should say whose token it is, for logs).
    public init(tokens: [(token: String, scope: AccessScope)]) {
        entries = tokens.map { Entry(scope: $0.scope, digest: Self.digest($0.token), isClear: true) }
    }

    /// Whether some entry holds its token in the clear (so the file holding it must be private).
    public var holdsClearTokens: Bool { entries.contains(where: \.isClear) }

    /// The scope of `token`, or nil if no entry accepts it. Every entry is compared, whichever matches.
    public func scope(ofToken token: some StringProtocol) -> AccessScope? {
        let given = Self.digest(token)
        var found: AccessScope?
        for entry in entries where Self.constantTimeEquals(given, entry.digest) {
            found = entry.scope
        }
        return found
    }

    /// Adds the entries of `other`.
    mutating func merge(_ other: AccessPolicy) {
        entries += other.entries
    }

    static func digest(_ token: some StringProtocol) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    /// Whether `given` equals `expected`, taking time that depends only on the length of `expected`: every byte
    /// is compared whatever the first difference, so the time does not tell how much of a guess was right.
    static func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt64(truncatingIfNeeded: given.count ^ expected.count)
        for index in expected.indices {
            let byte = index < given.count ? given[index] : 0
            difference |= UInt64(byte ^ expected[index])
        }
        return difference == 0
    }
}
