import Crypto

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), as S3 wants it: the path is signed as given (percent-encoded
/// once, never normalized), the query is sorted by encoded name and value, every header handed in is signed.
///
/// The signer adds `host`, `x-amz-date` and, with a session token, `x-amz-security-token` to the signed headers
/// and returns the headers to send. It never prints the secret key: neither ``S3Credentials/description`` nor
/// any error shows it.
public struct SigV4Signer: Sendable {
    /// A request to sign.
    public struct Request: Sendable, Hashable {
        /// `GET`, `PUT`, `DELETE`, ... (upper case).
        public var method: String
        /// The `Host` header: the host name, with `:port` unless the port is the scheme's default.
        public var host: String
        /// The path, not yet percent-encoded (`/bucket/my key`); the signer encodes it once.
        public var path: String
        /// The query items, not yet percent-encoded, in any order.
        public var query: [(name: String, value: String)] {
            get { queryItems.map { ($0.name, $0.value) } }
            set { queryItems = newValue.map { QueryItem(name: $0.name, value: $0.value) } }
        }
        /// Further headers to sign and send (`if-match`, `x-amz-content-sha256`, `content-type`, ...).
        public var headers: [(name: String, value: String)] {
            get { headerItems.map { ($0.name, $0.value) } }
            set { headerItems = newValue.map { QueryItem(name: $0.name, value: $0.value) } }
        }
        /// The payload's SHA-256 in lower-case hex, or ``SigV4Signer/unsignedPayload``.
        public var payloadHash: String

        private var queryItems: [QueryItem]
        private var headerItems: [QueryItem]

        /// Creates a request to sign.
        public init(
            method: String,
            host: String,
            path: String,
            query: [(name: String, value: String)] = [],
            headers: [(name: String, value: String)] = [],
            payloadHash: String
        ) {
            self.method = method
            self.host = host
            self.path = path
            self.payloadHash = payloadHash
            self.queryItems = query.map { QueryItem(name: $0.name, value: $0.value) }
            self.headerItems = headers.map { QueryItem(name: $0.name, value: $0.value) }
        }

        private struct QueryItem: Sendable, Hashable {
            var name: String
            var value: String
        }
    }

    /// What signing produced: the headers to send, and the intermediate strings (for tests and debugging;
    /// none of them contains the secret key).
    public struct Signed: Sendable {
        /// The headers to send with the request: the request's own, plus `host`, `x-amz-date`,
        /// `x-amz-security-token` (with a session token) and `authorization`.
        public var headers: [(name: String, value: String)]
        /// The canonical request.
        public var canonicalRequest: String
        /// The string to sign.
        public var stringToSign: String
        /// The signature, lower-case hex.
        public var signature: String
        /// The `Authorization` header's value.
        public var authorization: String
    }

    /// The payload hash of a request whose body is not signed.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The SHA-256 of the empty payload.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The credentials requests are signed with.
    public var credentials: S3Credentials
    /// The region in the credential scope (`us-east-1`).
    public var region: String
    /// The service in the credential scope (`s3`).
    public var service: String

    /// Creates a signer.
    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Signs `request` for the UTC time `date`.
    public func sign(_ request: Request, at date: SigV4Date) -> Signed {
        var headers = request.headers
        headers.append(("host", request.host))
        headers.append(("x-amz-date", date.timestamp))
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }

        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            byName[name.lowercased(), default: []].append(Self.trimmed(value))
        }
        let names = byName.keys.sorted()
        let signedHeaders = names.joined(separator: ";")
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let canonicalQuery = request.query
            .map { (Self.encode($0.name, keepSlash: false), Self.encode($0.value, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
        let canonicalRequest = [
            request.method,
            Self.encode(request.path.isEmpty ? "/" : request.path, keepSlash: true),
            canonicalQuery,
            canonicalHeaders,
            signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")

        let scope = "\(date.day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", date.timestamp, scope, Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")

        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [date.day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), "
            + "Signature=\(signature)"
        headers.append(("authorization", authorization))
        return Signed(
            headers: headers,
            canonicalRequest: canonicalRequest,
            stringToSign: stringToSign,
            signature: signature,
            authorization: authorization
        )
    }

    /// The SHA-256 of `payload` in lower-case hex, for ``Request/payloadHash``.
    public static func payloadHash(_ payload: some Sequence<UInt8>) -> String {
        hex(SHA256.hash(data: Array(payload)))
    }

    /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters stay, everything else is `%XX` of its
    /// UTF-8 bytes in upper-case hex; `/` stays only in paths.
    static func encode(_ text: String, keepSlash: Bool) -> String {
        var encoded = ""
        encoded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                encoded.append("/")
            default:
                encoded.append("%")
                encoded.append(hexDigits[Int(byte >> 4)])
                encoded.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return encoded
    }

    private static let hexDigits: [Character] = Array("0123456789ABCDEF")

    /// The value without leading and trailing white space, runs of spaces collapsed to one.
    private static func trimmed(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    private static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var result = [UInt8]()
        for byte in bytes {
            result.append(digits[Int(byte >> 4)])
            result.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: result, as: UTF8.self)
    }
}

/// A UTC time as SigV4 writes it: `20150830T123600Z`, and the day `20150830` of the credential scope.
public struct SigV4Date: Sendable, Hashable {
    /// `yyyyMMdd'T'HHmmss'Z'`.
    public let timestamp: String
    /// `yyyyMMdd`.
    public var day: String { String(timestamp.prefix(8)) }

    /// The time `secondsSince1970` seconds after 1970-01-01T00:00:00Z.
    public init(secondsSince1970: Int64) {
        let days = secondsSince1970 >= 0 ? secondsSince1970 / 86_400 : (secondsSince1970 - 86_399) / 86_400
        let second = secondsSince1970 - days * 86_400
        // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar, eras of 400 years).
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        timestamp =
            "\(year)\(two(month))\(two(day))T\(two(second / 3600))\(two(second / 60 % 60))\(two(second % 60))Z"
    }
}
