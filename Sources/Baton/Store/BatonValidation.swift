/// The checks every store applies to its arguments before any I/O.
@_spi(BatonStoreKit) public enum BatonValidation {
    /// The longest name, in UTF-8 bytes.
    public static let maxNameBytes = 256
    /// The largest metadata, in UTF-8 bytes.
    public static let maxMetadataBytes = 4096
    /// The longest ttl or retention a store accepts.
    public static let maxDuration: Duration = .seconds(366 * 24 * 3600)

    /// Checks a key, holder, system, round, candidate, group or member: 1–256 bytes of UTF-8, no control
    /// characters.
    /// - Parameters:
    ///   - value: the name to check.
    ///   - field: what the value is, for the error message ("key", "holder", ...).
    /// - Throws: ``BatonError`` `invalidArgument` naming the field and what is wrong (the value is shown escaped
    ///   and shortened, never raw).
    public static func name(_ value: String, _ field: String) throws(BatonError) {
        let bytes = value.utf8.count
        if bytes == 0 {
            throw .invalidArgument("\(field) is empty; it must be 1–\(maxNameBytes) bytes of UTF-8")
        }
        if bytes > maxNameBytes {
            throw .invalidArgument("\(field) is \(bytes) bytes long; the limit is \(maxNameBytes) bytes of UTF-8")
        }
        // The usual name is printable ASCII: checked byte by byte, without Unicode's tables.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return }
        if let bad = value.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            let code = String(bad.value, radix: 16, uppercase: true)
            throw .invalidArgument(
                "\(field) \(preview(value)) contains the control character U+\(String(repeating: "0", count: max(0, 4 - code.count)))\(code)"
            )
        }
    }

    /// Checks the system and round that name one round (see ``name(_:_:)``), the system first.
    public static func round(system: String, round: String) throws(BatonError) {
        try name(system, "system")
        try name(round, "round")
    }

    /// Checks published metadata: at most 4 KiB of UTF-8.
    public static func metadata(_ value: String?) throws(BatonError) {
        guard let value else { return }
        let bytes = value.utf8.count
        if bytes > maxMetadataBytes {
            throw .invalidArgument("metadata is \(bytes) bytes long; the limit is \(maxMetadataBytes) bytes")
        }
    }

    /// Checks a ttl or retention: positive, at least one millisecond, at most a year.
    public static func duration(_ value: Duration, _ field: String) throws(BatonError) {
        if value < .milliseconds(1) {
            throw .invalidArgument("\(field) must be at least 1 ms, got \(value)")
        }
        if value > maxDuration {
            throw .invalidArgument("\(field) must be at most 366 days, got \(value)")
        }
    }

    /// Checks a lease's key, holder, ttl and metadata.
    public static func lease(_ lease: Lease) throws(BatonError) {
        try name(lease.key, "key")
        try name(lease.holder, "holder")
        try duration(lease.ttl, "ttl")
        try metadata(lease.metadata)
    }

    /// A value shortened and escaped for an error message.
    static func preview(_ value: String) -> String {
        let short =
            value.unicodeScalars.count > 40
            ? String(String.UnicodeScalarView(value.unicodeScalars.prefix(40))) + "…" : value
        return "\"" + short.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down.
    public var batonMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration in whole nanoseconds, rounded down.
    public var batonNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The duration in seconds as a floating-point number.
    public var batonSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
