/// The address of a store, as written on the command line, in configuration and in `BATON_STORE`: a scheme
/// naming the kind of store, then either `//` and an authority (`[user[:password]@]host[:port][,host[:port]...]`)
/// with an optional path and query, or an opaque path and query (`sqlite:baton.db`, `memory:`).
///
/// The core parses the shape and knows no store: each store declares the schemes it answers to and checks the
/// parts it takes (``URLOpenableStore``), and `BatonStores` opens a URL with the store that declared its scheme.
/// The forms of Baton's own stores:
///
/// | form | store |
/// |---|---|
/// | `memory:` | ``MemoryLeaseStore``, this process only |
/// | `sqlite:PATH` | an SQLite file, relative to the working directory or absolute (the default is `sqlite:baton.db`) |
/// | `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS) | one Redis node |
/// | `redis://h1:p1,h2:p2,h3:p3` | a Redlock quorum over independent Redis nodes |
/// | `etcd://host:port[,host:port...]`, `etcds://...` (TLS) | an etcd v3 cluster |
/// | `postgres://user:pass@host:port/db?sslmode=...`, `postgresql://...` | PostgreSQL |
/// | `s3://bucket/prefix/?endpoint=URL&region=R` | an S3-compatible object store |
///
/// The parser is written for these forms rather than taken from `Foundation.URL`, which cannot read an
/// authority with several hosts. User, password, path and query items are percent-decoded (`%40` is `@`); a
/// `+` stays a `+`.
///
/// ``description`` prints the URL with the password and secret-looking query values replaced by `***`, and
/// errors never contain them either, so a `StoreURL` may be logged.
public struct StoreURL: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    /// One host of the authority, with its port if the URL gives one.
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        /// The host name or address (an IPv6 address without its brackets).
        public var name: String
        /// The port, if written.
        public var port: Int?

        /// A host.
        public init(_ name: String, port: Int? = nil) {
            self.name = name
            self.port = port
        }

        /// `name:port`, with IPv6 addresses in brackets.
        public var description: String {
            let shownName = name.contains(":") ? "[\(name)]" : name
            return port.map { "\(shownName):\($0)" } ?? shownName
        }
    }

    /// One `name=value` item of the query, percent-decoded.
    public struct QueryItem: Sendable, Hashable {
        /// The item's name.
        public var name: String
        /// The item's value (empty for an item written without `=`).
        public var value: String

        /// An item.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The scheme as written, lower-cased (`sqlite`, `rediss`, ...).
    public let scheme: String
    /// Whether the URL has an authority: `//` after the scheme (`redis://...`, also `sqlite:///abs/path` with an
    /// empty one).
    public let hasAuthority: Bool
    /// The user name, if the URL has one (`redis://:pass@host` has a password but no user).
    public let user: String?
    /// The password, if the URL has one. Never printed: ``description`` shows `***`.
    public let password: String?
    /// The hosts of the authority, in the order written; empty without an authority or with an empty one.
    public let hosts: [Host]
    /// The path, percent-decoded: what follows the authority (`/db`, `/prefix/`), or everything after the scheme
    /// up to the query when there is no authority (`baton.db` for `sqlite:baton.db`).
    public let path: String
    /// The query items, in the order written.
    public let queryItems: [QueryItem]

    /// The value of the first query item called `name`, if any.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    // MARK: Parsing

    /// Parses a store URL: a scheme, then an authority, path and query, or an opaque path and query. Surrounding
    /// whitespace is ignored. Which schemes exist and what each store accepts is checked when the URL is opened.
    ///
    /// - Throws: ``BatonError`` `invalidArgument` naming what is wrong: no scheme, an empty host between commas, a
    ///   bad port, an invalid host name, a malformed percent-escape, an `@` after the authority. The message never
    ///   contains the password.
    public init(_ string: String) throws(BatonError) {
        let text = Substring(string).trimmingWhitespace()
        guard let colon = text.firstIndex(of: ":"), Self.isScheme(text[..<colon]) else {
            throw .invalidArgument(
                "a store URL starts with a scheme, such as memory:, sqlite:PATH or redis://host:port"
            )
        }
        let scheme = text[..<colon].lowercased()
        let rest = text[text.index(after: colon)...]
        guard rest.hasPrefix("//") else {
            let (rawPath, query) = Self.splitQuery(rest)
            self.init(
                scheme: scheme, hasAuthority: false, user: nil, password: nil, hosts: [],
                path: try Self.decode(rawPath, "path"), queryItems: try Self.parseQuery(query))
            return
        }
        let afterSlashes = rest.dropFirst(2)
        let authorityEnd = afterSlashes.firstIndex { $0 == "/" || $0 == "?" } ?? afterSlashes.endIndex
        let authority = afterSlashes[..<authorityEnd]
        // An '@' after the authority is most likely the end of a password with an unencoded '/' or '?', whose
        // pieces would otherwise pass for a port, a path or a query item and be printed.
        if afterSlashes[authorityEnd...].contains("@") {
            throw .invalidArgument(
                "the \(scheme): store URL has an '@' after its host part; if the user name or password contains "
                    + "'/', '?' or '@', percent-encode them as %2F, %3F, %40 (also an '@' in a path or query)"
            )
        }
        let (rawPath, query) = Self.splitQuery(afterSlashes[authorityEnd...])
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
        self.init(
            scheme: scheme,
            hasAuthority: true,
            user: user,
            password: password,
            hosts: try Self.parseHosts(hostList, scheme: scheme),
            path: try Self.decode(rawPath, "path"),
            queryItems: try Self.parseQuery(query)
        )
    }

    private init(
        scheme: String,
        hasAuthority: Bool,
        user: String?,
        password: String?,
        hosts: [Host],
        path: String,
        queryItems: [QueryItem]
    ) {
        self.scheme = scheme
        self.hasAuthority = hasAuthority
        self.user = user
        self.password = password
        self.hosts = hosts
        self.path = path
        self.queryItems = queryItems
    }

    private static func parseHosts(_ list: Substring, scheme: String) throws(BatonError) -> [Host] {
        if list.isEmpty { return [] }
        var hosts: [Host] = []
        for (index, entry) in list.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let which = "host \(index + 1) of the \(scheme): store URL"
            if entry.isEmpty {
                throw .invalidArgument("\(which) is missing (an empty entry between commas)")
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
                    throw .invalidArgument("\(which) has a port but no host name")
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
        guard hasAuthority else { return scheme + ":" + Self.encode(path, keeping: "/") + queryDescription }
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
