/// A W3C Trace Context `traceparent` (version 00): the trace a command's term belongs to, passed to the command as
/// `TRACEPARENT`, as OpenTelemetry's environment carriers read it.
///
/// Every term gets a span ID of its own. Its trace is the one `baton` was started in, when its own environment holds
/// a valid `TRACEPARENT` (a pipeline or a supervisor that traces: the command's spans then join that trace), and a
/// new trace of the term otherwise, sampled. An invalid `TRACEPARENT` is ignored, and `TRACESTATE` with it, as the
/// specification asks of a receiver.
struct TraceParent: Hashable, Sendable {
    /// 16 bytes, not all zero.
    let traceID: [UInt8]
    /// 8 bytes, not all zero.
    let spanID: [UInt8]
    /// Bit 0: sampled.
    let flags: UInt8

    /// The name of the environment variable.
    static let variable = "TRACEPARENT"
    /// The vendor state that travels with it.
    static let stateVariable = "TRACESTATE"

    /// Reads a `traceparent` header value; nil if it is not a valid one.
    ///
    /// Version 00 must be exactly `00-TRACEID-SPANID-FLAGS` in lowercase hex; a later version (not ff) is read by its
    /// first four fields, which must be followed by the end or a `-`.
    init?(header: String) {
        let bytes = Array(header.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"),
            bytes[52] == UInt8(ascii: "-"), let version = Self.hex(bytes[0..<2])?.first, version != 0xff,
            let traceID = Self.hex(bytes[3..<35]), let spanID = Self.hex(bytes[36..<52]),
            let flags = Self.hex(bytes[53..<55])?.first
        else { return nil }
        if version == 0 {
            guard bytes.count == 55 else { return nil }
        } else if bytes.count > 55, bytes[55] != UInt8(ascii: "-") {
            return nil
        }
        guard traceID.contains(where: { $0 != 0 }), spanID.contains(where: { $0 != 0 }) else { return nil }
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    init(traceID: [UInt8], spanID: [UInt8], flags: UInt8) {
        precondition(traceID.count == 16 && spanID.count == 8, "a trace ID is 16 bytes, a span ID 8")
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// A new span of this trace (the same trace ID and flags).
    func child<Generator: RandomNumberGenerator>(using generator: inout Generator) -> TraceParent {
        TraceParent(traceID: traceID, spanID: Self.randomID(8, using: &generator), flags: flags)
    }

    /// A term's trace context: a new span of `parent`'s trace, or of a new sampled trace without one.
    static func term<Generator: RandomNumberGenerator>(
        in parent: TraceParent?, using generator: inout Generator
    ) -> TraceParent {
        if let parent { return parent.child(using: &generator) }
        return TraceParent(
            traceID: randomID(16, using: &generator), spanID: randomID(8, using: &generator), flags: 0x01)
    }

    /// The version 00 header value.
    var header: String { "00-\(Self.hexString(traceID))-\(Self.hexString(spanID))-\(Self.hexString([flags]))" }

    /// The trace ID in hex, as tracing back ends show it.
    var traceIDString: String { Self.hexString(traceID) }

    /// The environment entry `TRACEPARENT=…`.
    var environmentEntry: String { "\(Self.variable)=\(header)" }

    /// The trace `baton` runs in, read from its own environment, and the environment its commands start from:
    /// `TRACEPARENT` removed (each term adds its own) and `TRACESTATE` kept only beside a valid parent.
    static func inherited(_ environment: [String: String]) -> (parent: TraceParent?, environment: [String: String]) {
        var environment = environment
        let parent = environment[variable].flatMap { TraceParent(header: $0) }
        environment[variable] = nil
        if parent == nil { environment[stateVariable] = nil }
        return (parent, environment)
    }

    // MARK: Hex

    private static func randomID<Generator: RandomNumberGenerator>(
        _ count: Int, using generator: inout Generator
    ) -> [UInt8] {
        while true {
            // Eight bytes per draw (a draw of the system's generator is a system call).
            var id: [UInt8] = []
            id.reserveCapacity(count)
            while id.count < count {
                var word = generator.next()
                for _ in 0..<min(8, count - id.count) {
                    id.append(UInt8(truncatingIfNeeded: word))
                    word >>= 8
                }
            }
            if id.contains(where: { $0 != 0 }) { return id }
        }
    }

    private static func hex(_ digits: ArraySlice<UInt8>) -> [UInt8]? {
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// Lowercase hex only, as the specification requires.
    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    private static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
