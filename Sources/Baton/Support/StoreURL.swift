/// The address of a store, as written on the command line, in configuration and in `BATON_STORE`.
///
/// The forms, one per store:
///
/// | form | store |
/// |---|---|
/// | `memory:` | ``MemoryLeaseStore``, this process only |
/// | `sqlite:PATH` | an SQLite file, relative to the working directory or absolute; the default is `sqlite:baton.db` |
/// | `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS) | one Redis node |
/// | `redis://h1:p1,h2:p2,h3:p3` | a Redlock quorum over independent Redis nodes |
/// | `etcd://host:port[,host:port...]`, `etcds://...` (TLS) | an etcd v3 cluster |
/// | `postgres://user:pass@host:port/db?sslmode=...`, `postgresql://...` | PostgreSQL |
/// | `s3://bucket/prefix/?endpoint=URL&region=R` | an S3-compatible object store |
///
/// The parser is written for these forms rather than taken from `Foundation.URL`, which cannot read an
/// authority with several hosts. User, password, path and query items are percent-decoded (`%40` is `@`); a
/// `+` stays a `+`. What each store makes of the path and the query items (a Redis database number, a PostgreSQL
/// `sslmode`, an S3 `endpoint`) is checked by that store, except where the form above leaves no doubt.
///
/// ``description`` prints the URL with the password and secret-looking query values replaced by `***`, and
/// errors never contain them either, so a `StoreURL` may be logged.
public struct StoreURL: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    /// Which store a URL names: one value per store, shared by the schemes that are spellings of it
    /// (`redis` and `rediss`, `postgres` and `postgresql`).
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        /// The store's name, as in "the redis store".
        public let name: String
        /// The port a host without one gets, if the store has a usual one.
        public let defaultPort: Int?

        private init(_ name: String, defaultPort: Int? = nil) {
            self.name = name
            self.defaultPort = defaultPort
        }

        /// The in-process store.
        public static let memory = Kind("memory")
        /// The embedded SQLite store.
        public static let sqlite = Kind("sqlite")
        /// Redis: one node, or a Redlock quorum of several.
        public static let redis = Kind("redis", defaultPort: 6379)
        /// etcd v3.
        public static let etcd = Kind("etcd", defaultPort: 2379)
        /// PostgreSQL.
        public static let postgres = Kind("postgres", defaultPort: 5432)
        /// An S3-compatible object store.
        public static let s3 = Kind("s3")

        /// The store's name.
        public var description: String { name }
    }

    /// One host of the authority: a name or an address, and a port if one was given.
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        /// The host name or address; an IPv6 address without its brackets.
        public var name: String
        /// The port, 1–65535, if given.
        public var port: Int?

        /// Creates a host.
        public init(_ name: String, port: Int? = nil) {
            self.name = name
            self.port = port
        }

        /// `name:port`, with brackets around an IPv6 address.
        public var description: String {
            let shownName = name.contains(":") ? "[\(name)]" : name
            guard let port else { return shownName }
            return "\(shownName):\(port)"
        }
    }

    /// One `name=value` pair of the query, percent-decoded. A pair written without `=` has an empty value.
    public struct QueryItem: Sendable, Hashable {
        /// The name.
        public var name: String
        /// The value.
        public var value: String

        /// Creates a query item.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The scheme as written, lower-cased: `memory`, `sqlite`, `redis`, `rediss`, `etcd`, `etcds`, `postgres`,
    /// `postgresql` or `s3`.
    public let scheme: String
    /// The store the scheme names.
    public let kind: Kind
    /// Whether the scheme asks for TLS (`rediss`, `etcds`). PostgreSQL says so with `sslmode`, S3 with the
    /// endpoint's scheme.
    public let usesTLS: Bool
    /// The user name, if the URL has one (`redis://:pass@host` has a password but no user).
    public let user: String?
    /// The password, if the URL has one. Never printed: ``description`` shows `***`.
    public let password: String?
    /// The hosts of the authority, in the order written; empty for `memory:` and `sqlite:`. For `s3://` the
    /// single host is the bucket.
    public let hosts: [Host]
    /// The path, percent-decoded: the file for `sqlite:`, `/db` for Redis and PostgreSQL, `/prefix/` for S3,
    /// and otherwise empty.
    public let path: String
    /// The query items, in the order written.
    public let queryItems: [QueryItem]

    /// The schemes this parser knows, in the order shown in error messages.
    public static let knownSchemes = [
        "memory", "sqlite", "redis", "rediss", "etcd", "etcds", "postgres", "postgresql", "s3",
    ]

    /// `sqlite:baton.db`, the store used when none is named.
    public static let defaultString = "sqlite:baton.db"

    /// The store used when none is named: the SQLite file `baton.db` in the working directory.
    public static var `default`: StoreURL {
        StoreURL(scheme: "sqlite", kind: .sqlite, path: "baton.db")
    }

    private init(
        scheme: String,
        kind: Kind,
        usesTLS: Bool = false,
        user: String? = nil,
        password: String? = nil,
        hosts: [Host] = [],
        path: String = "",
        queryItems: [QueryItem] = []
    ) {
        self.scheme = scheme
        self.kind = kind
        self.usesTLS = usesTLS
        self.user = user
        self.password = password
        self.hosts = hosts
        self.path = path
        self.queryItems = queryItems
    }

    /// The value of the first query item called `name`, if any.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// The bucket of an `s3://` URL.
    public var bucket: String? { kind == .s3 ? hosts.first?.name : nil }

    /// The key prefix of an `s3://` URL: the path without its leading `/` (`baton/` for `s3://b/baton/`).
    public var s3Prefix: String? {
        guard kind == .s3 else { return nil }
        return path.hasPrefix("/") ? String(path.dropFirst()) : path
    }

    // MARK: Parsing

    /// Parses a store URL in one of the forms listed in the type's documentation. Surrounding whitespace is
    /// ignored.
    ///
    /// - Throws: ``BatonError`` `invalidArgument` naming what is wrong: an unknown scheme (with the known ones), a
    ///   missing host, a bad port, an empty SQLite path, a malformed percent-escape, a part the store does not
    ///   take. The message never contains the password.
    public init(_ string: String) throws(BatonError) {
        let text = Substring(string).trimmingWhitespace()
        guard let colon = text.firstIndex(of: ":"), Self.isScheme(text[..<colon]) else {
            throw .invalidArgument(
                "a store URL starts with a scheme, such as memory:, sqlite:PATH or redis://host:port; known schemes: "
                    + Self.knownSchemes.joined(separator: ", ")
            )
        }
        let scheme = text[..<colon].lowercased()
        let rest = text[text.index(after: colon)...]
        switch scheme {
        case "memory":
            guard rest.isEmpty || rest == "//" else {
                throw .invalidArgument("a memory: store URL takes nothing after the scheme; write memory:")
            }
            self.init(scheme: scheme, kind: .memory)
        case "sqlite":
            try self.init(sqlite: rest)
        case "redis", "rediss", "etcd", "etcds", "postgres", "postgresql", "s3":
            try self.init(network: scheme, rest)
        default:
            throw .invalidArgument(
                "unknown store URL scheme \(BatonValidation.preview(scheme)); known schemes: "
                    + Self.knownSchemes.joined(separator: ", ")
            )
        }
    }

    private init(sqlite rest: Substring) throws(BatonError) {
        let example = "write sqlite:PATH, e.g. sqlite:baton.db or sqlite:/var/lib/baton/baton.db"
        var pathPart = rest
        if rest.hasPrefix("//") {
            // sqlite:///abs/path is sqlite:/abs/path written with an empty authority.
            pathPart = rest.dropFirst(2)
            guard pathPart.isEmpty || pathPart.hasPrefix("/") else {
                throw .invalidArgument("a sqlite: store URL names a file, not a host; \(example)")
            }
        }
        let (rawPath, query) = Self.splitQuery(pathPart)
        let path = try Self.decode(rawPath, "sqlite path")
        if path.isEmpty {
            throw .invalidArgument("the sqlite: store URL has an empty path; \(example)")
        }
        if path.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw .invalidArgument("the sqlite path contains a control character")
        }
        self.init(scheme: "sqlite", kind: .sqlite, path: path, queryItems: try Self.parseQuery(query))
    }

    private init(network scheme: String, _ rest: Substring) throws(BatonError) {
        let kind: Kind
        switch scheme {
        case "redis", "rediss": kind = .redis
        case "etcd", "etcds": kind = .etcd
        case "postgres", "postgresql": kind = .postgres
        default: kind = .s3
        }
        let form = Self.form(of: kind)
        guard rest.hasPrefix("//") else {
            throw .invalidArgument("the store URL needs // and a host after \(scheme):, as in \(form)")
        }
        let afterSlashes = rest.dropFirst(2)
        let authorityEnd = afterSlashes.firstIndex { $0 == "/" || $0 == "?" } ?? afterSlashes.endIndex
        let authority = afterSlashes[..<authorityEnd]
        // An '@' after the authority is most likely the end of a password with an unencoded '/' or '?', whose
        // pieces would otherwise pass for a port, a path or a query item and be printed.
        if afterSlashes[authorityEnd...].contains("@") {
            throw .invalidArgument(
                "the \(scheme): store URL has an '@' after its host part (\(form)); if the user name or password "
                    + "contains '/', '?' or '@', percent-encode them as %2F, %3F, %40 (also an '@' in a path or query)"
            )
        }
        try self.init(network: scheme, kind: kind, authority: authority, afterSlashes[authorityEnd...])
    }

    private init(
        network scheme: String,
        kind: Kind,
        authority: Substring,
        _ afterAuthority: Substring
    ) throws(BatonError) {
        let form = Self.form(of: kind)
        let (rawPath, query) = Self.splitQuery(afterAuthority)

        var user: String?
        var password: String?
        var hostList = authority
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostList = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon], "user name")
                password = try Self.decode(userInfo[userInfo.index(after: colon)...], "password", secret: true)
            } else {
                user = try Self.decode(userInfo, "user name")
            }
            if user?.isEmpty == true { user = nil }
        }

        let hosts = try Self.parseHosts(hostList, scheme: scheme, form: form)
        let path = try Self.decode(rawPath, "path")
        let queryItems = try Self.parseQuery(query)

        switch kind {
        case .redis:
            if !(path.isEmpty || path == "/" || (path.hasPrefix("/") && Self.isDigits(path.dropFirst()))) {
                let shown = BatonValidation.preview(path)
                throw .invalidArgument("the path of a \(scheme): store URL is a database number, as in /0: \(shown)")
            }
        case .etcd:
            if !(path.isEmpty || path == "/") {
                throw .invalidArgument("an \(scheme): store URL has no path: \(form)")
            }
        case .s3:
            if user != nil || password != nil {
                throw .invalidArgument(
                    "an s3: store URL carries no credentials; they come from AWS_ACCESS_KEY_ID and "
                        + "AWS_SECRET_ACCESS_KEY: \(form)"
                )
            }
            if hosts.count != 1 || hosts[0].port != nil {
                throw .invalidArgument("an s3: store URL names one bucket, without a port: \(form)")
            }
        default:
            break
        }
        self.init(
            scheme: scheme,
            kind: kind,
            usesTLS: scheme == "rediss" || scheme == "etcds",
            user: user,
            password: password,
            hosts: hosts,
            path: path,
            queryItems: queryItems
        )
    }

    private static func form(of kind: Kind) -> String {
        switch kind {
        case .redis: "redis://[user:pass@]host:port[/db] or redis://h1:p1,h2:p2,h3:p3"
        case .etcd: "etcd://host:port[,host:port...]"
        case .postgres: "postgres://user:pass@host:port/db"
        default: "s3://bucket/prefix/?endpoint=URL&region=R"
        }
    }

    private static func parseHosts(_ list: Substring, scheme: String, form: String) throws(BatonError) -> [Host] {
        if list.isEmpty {
            throw .invalidArgument("the \(scheme): store URL has no host: \(form)")
        }
        var hosts: [Host] = []
        for (index, entry) in list.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let which = "host \(index + 1) of the \(scheme): store URL"
            if entry.isEmpty {
                throw .invalidArgument("\(which) is missing (an empty entry between commas): \(form)")
            }
            var name: Substring
            var portText: Substring?
            if entry.hasPrefix("[") {
                guard let close = entry.firstIndex(of: "]") else {
                    throw .invalidArgument("\(which), \(BatonValidation.preview(String(entry))), lacks its closing ]")
                }
                name = entry[entry.index(after: entry.startIndex)..<close]
                let after = entry[entry.index(after: close)...]
                if !after.isEmpty {
                    guard after.hasPrefix(":") else {
                        throw .invalidArgument(
                            "\(which), \(BatonValidation.preview(String(entry))), has text after its closing ]"
                        )
                    }
                    portText = after.dropFirst()
                }
                if name.isEmpty || !name.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) {
                    throw .invalidArgument(
                        "\(which) is not a valid IPv6 address: \(BatonValidation.preview(String(name)))")
                }
            } else {
                if let colon = entry.firstIndex(of: ":") {
                    name = entry[..<colon]
                    portText = entry[entry.index(after: colon)...]
                } else {
                    name = entry
                }
                if name.isEmpty {
                    throw .invalidArgument("\(which) has a port but no host name: \(form)")
                }
                if !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) {
                    throw .invalidArgument(
                        "\(which) is not a valid host name: \(BatonValidation.preview(String(name))) "
                            + "(letters, digits, '-', '.' and '_' only; IPv6 addresses go in brackets)"
                    )
                }
            }
            var port: Int?
            if let portText {
                guard Self.isDigits(portText), portText.count <= 5, let value = Int(portText),
                    (1...65535).contains(value)
                else {
                    throw .invalidArgument(
                        "\(which) has a bad port \(BatonValidation.preview(String(portText))): "
                            + "a port is a number from 1 to 65535"
                    )
                }
                port = value
            }
            hosts.append(Host(String(name), port: port))
        }
        return hosts
    }

    private static func splitQuery(_ text: Substring) -> (path: Substring, query: Substring?) {
        guard let mark = text.firstIndex(of: "?") else { return (text, nil) }
        return (text[..<mark], text[text.index(after: mark)...])
    }

    private static func parseQuery(_ query: Substring?) throws(BatonError) -> [QueryItem] {
        guard let query, !query.isEmpty else { return [] }
        var items: [QueryItem] = []
        for pair in query.split(separator: "&") {
            let equals = pair.firstIndex(of: "=")
            let name = try decode(pair[..<(equals ?? pair.endIndex)], "query item name")
            if name.isEmpty {
                throw .invalidArgument("the store URL has a query item without a name")
            }
            let secret = isSecretName(name)
            let value =
                try equals.map { (equals) throws(BatonError) in
                    try decode(pair[pair.index(after: equals)...], "value of query item \(name)", secret: secret)
                } ?? ""
            items.append(QueryItem(name: name, value: value))
        }
        return items
    }

    /// Percent-decodes `text`; the error names `what` and, unless `secret`, shows the text.
    private static func decode(_ text: Substring, _ what: String, secret: Bool = false) throws(BatonError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = text.utf8[...]
        while let byte = utf8.popFirst() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard utf8.count >= 2, let high = hexValue(utf8.removeFirst()), let low = hexValue(utf8.removeFirst())
            else {
                let shown = secret ? "" : " \(BatonValidation.preview(String(text)))"
                throw .invalidArgument("the \(what)\(shown) has a malformed percent-escape (write % as %25)")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            let shown = secret ? "" : " \(BatonValidation.preview(String(text)))"
            throw .invalidArgument("the \(what)\(shown) is not UTF-8 once percent-decoded")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func isScheme(_ text: Substring) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
    }

    private static func isDigits(_ text: Substring) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && $0.isWholeNumber }
    }

    /// Whether a query item's value is redacted: its name mentions a password, a secret, a token or a key.
    static func isSecretName(_ name: String) -> Bool {
        let lower = name.lowercased()
        return ["password", "passwd", "secret", "token", "credential", "key"].contains { lower.contains($0) }
    }

    // MARK: Printing

    /// The URL with the password, and the values of query items whose names mention a password, secret, token,
    /// credential or key, replaced by `***`. Parsing the description of a URL without secrets gives the same URL.
    public var description: String {
        switch kind {
        case .memory:
            return "memory:"
        case .sqlite:
            return "sqlite:" + Self.encode(path, keeping: "/") + queryDescription
        default:
            var text = scheme + "://"
            if user != nil || password != nil {
                text += Self.encode(user ?? "", keeping: "")
                if password != nil { text += ":***" }
                text += "@"
            }
            text += hosts.map(\.description).joined(separator: ",")
            text += Self.encode(path, keeping: "/")
            return text + queryDescription
        }
    }

    /// The fields, with the password and secret query values redacted, for `dump` and debuggers.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "scheme": scheme,
                "user": user as Any,
                "password": password.map { _ in "***" } as Any,
                "hosts": hosts,
                "path": path,
                "query": queryDescription,
            ]
        )
    }

    private var queryDescription: String {
        guard !queryItems.isEmpty else { return "" }
        let pairs = queryItems.map { item in
            let value = Self.isSecretName(item.name) ? "***" : Self.encode(item.value, keeping: "/:")
            return Self.encode(item.name, keeping: "") + "=" + value
        }
        return "?" + pairs.joined(separator: "&")
    }

    /// Percent-encodes everything but unreserved ASCII and the characters in `keeping`.
    private static func encode(_ text: String, keeping: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            let isUnreserved =
                scalar.isASCII
                && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                    || "-._~".unicodeScalars.contains(scalar))
            if isUnreserved || keeping.unicodeScalars.contains(scalar) {
                result.unicodeScalars.append(scalar)
            } else {
                for byte in String(scalar).utf8 {
                    let hex = String(byte, radix: 16, uppercase: true)
                    result += "%" + (hex.count == 1 ? "0" + hex : hex)
                }
            }
        }
        return result
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
