import NIOCore

/// A malformed frame from the server: the connection that received it is closed, since nothing after it can be
/// trusted to line up with the commands sent.
public struct RESPProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, without the frame's content beyond a few bytes of its header.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    public var description: String { "RESP protocol error: \(message)" }
}

/// Decodes RESP2 and RESP3 values from a byte stream, one complete value per call.
///
/// The decoder never consumes a partial frame: if the buffer ends inside a value it returns nil and leaves the
/// reader index where it was, to be called again when more bytes arrive. A malformed frame (an unknown type
/// byte, a length that is not a number, a missing `\r\n`, a frame over the ``Limits``) throws
/// ``RESPProtocolError``; it never traps, whatever the input.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    /// Bounds that keep a hostile or broken server from making the client allocate without limit.
    public struct Limits: Sendable, Hashable {
        /// The largest bulk string, in bytes: 512 MiB (Redis's own limit) by default.
        public var maxBulkBytes: Int = 512 * 1024 * 1024
        /// The most elements of one array, set, push or map: 16 Mi by default.
        public var maxElements: Int = 16 * 1024 * 1024
        /// The deepest nesting of aggregates: 64 by default.
        public var maxDepth: Int = 64
        /// The longest header or simple line (without `\r\n`): 64 KiB by default.
        public var maxLineBytes: Int = 64 * 1024

        /// The default limits.
        public init() {}
    }

    /// The bounds applied.
    public var limits: Limits

    /// Creates a decoder.
    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Decodes one value if the buffer holds all of it.
    /// - Returns: the value, with the reader index moved past it; nil (reader index unchanged) if the value is
    ///   not complete yet.
    /// - Throws: ``RESPProtocolError`` for a malformed frame.
    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        // Reading from a copy leaves `buffer` untouched when the value is incomplete; the copy shares storage.
        var reader = buffer
        guard let value = try parseValue(&reader, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: reader.readerIndex)
        return value
    }

    /// Decodes what is left when the connection closes; an incomplete value is dropped.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    // MARK: Parsing

    private func parseValue(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        if depth > limits.maxDepth {
            throw RESPProtocolError("aggregates nested deeper than \(limits.maxDepth) levels")
        }
        guard let type = buffer.readInteger(as: UInt8.self) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return try readLine(&buffer).map { .simpleString(String(buffer: $0)) }
        case UInt8(ascii: "-"):
            return try readLine(&buffer).map { .error(String(buffer: $0)) }
        case UInt8(ascii: ":"):
            guard let line = try readLine(&buffer) else { return nil }
            return .integer(try Self.integer(line, "integer"))
        case UInt8(ascii: "_"):
            guard let line = try readLine(&buffer) else { return nil }
            guard line.readableBytes == 0 else { throw RESPProtocolError("a null (_) with content") }
            return .null
        case UInt8(ascii: ","):
            guard let line = try readLine(&buffer) else { return nil }
            return .double(try Self.double(line))
        case UInt8(ascii: "#"):
            guard let line = try readLine(&buffer) else { return nil }
            switch String(buffer: line) {
            case "t": return .boolean(true)
            case "f": return .boolean(false)
            default: throw RESPProtocolError("a boolean that is neither #t nor #f")
            }
        case UInt8(ascii: "("):
            guard let line = try readLine(&buffer) else { return nil }
            let text = String(buffer: line)
            let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            else { throw RESPProtocolError("a big number that is not a decimal integer") }
            return .bigNumber(text)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            guard let body = try readBulk(&buffer, type: type) else { return nil }
            guard let bytes = body else {
                guard type == UInt8(ascii: "$") else { throw RESPProtocolError("a negative length for a bulk error") }
                return .null
            }
            if type == UInt8(ascii: "!") { return .error(String(buffer: bytes)) }
            if type == UInt8(ascii: "=") {
                var text = bytes
                guard text.readableBytes >= 4, text.getInteger(at: text.readerIndex + 3, as: UInt8.self) == 58,
                    let format = text.readString(length: 3)
                else { throw RESPProtocolError("a verbatim string without its three-letter format") }
                text.moveReaderIndex(forwardBy: 1)
                return .verbatimString(format: format, text: text)
            }
            return .bulkString(bytes)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            guard let line = try readLine(&buffer) else { return nil }
            let count = try Self.integer(line, "aggregate length")
            if count == -1 && type == UInt8(ascii: "*") { return .null }
            let elements = try checkedCount(count)
            var values: [RESPValue] = []
            values.reserveCapacity(min(elements, 1024))
            for _ in 0..<elements {
                guard let value = try parseValue(&buffer, depth: depth + 1) else { return nil }
                values.append(value)
            }
            switch type {
            case UInt8(ascii: "*"): return .array(values)
            case UInt8(ascii: "~"): return .set(values)
            default: return .push(values)
            }
        case UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let line = try readLine(&buffer) else { return nil }
            let pairs = try checkedCount(try Self.integer(line, "map length"))
            var entries: [RESPPair] = []
            entries.reserveCapacity(min(pairs, 1024))
            for _ in 0..<pairs {
                guard let key = try parseValue(&buffer, depth: depth + 1) else { return nil }
                guard let value = try parseValue(&buffer, depth: depth + 1) else { return nil }
                entries.append(RESPPair(key: key, value: value))
            }
            if type == UInt8(ascii: "|") {
                // An attribute annotates the value that follows it; the value is the reply.
                return try parseValue(&buffer, depth: depth + 1)
            }
            return .map(entries)
        default:
            throw RESPProtocolError("unknown type byte 0x\(String(type, radix: 16))")
        }
    }

    /// The next line without its `\r\n`, or nil if the buffer does not hold a whole line yet.
    private func readLine(_ buffer: inout ByteBuffer) throws -> ByteBuffer? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > limits.maxLineBytes + 1 {
                throw RESPProtocolError("a line longer than \(limits.maxLineBytes) bytes")
            }
            return nil
        }
        let length = newline - view.startIndex
        guard length >= 1, view[newline - 1] == UInt8(ascii: "\r") else {
            throw RESPProtocolError("a line ending in \\n without \\r")
        }
        if length - 1 > limits.maxLineBytes {
            throw RESPProtocolError("a line longer than \(limits.maxLineBytes) bytes")
        }
        let line = buffer.readSlice(length: length - 1)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// The body of a bulk frame: nil if incomplete, `.some(nil)` for a null (`$-1`), else the bytes.
    private func readBulk(_ buffer: inout ByteBuffer, type: UInt8) throws -> ByteBuffer?? {
        guard let line = try readLine(&buffer) else { return nil }
        let length = try Self.integer(line, "bulk length")
        if length == -1 { return .some(nil) }
        guard length >= 0 else { throw RESPProtocolError("a negative bulk length \(length)") }
        guard length <= limits.maxBulkBytes else {
            throw RESPProtocolError("a bulk string of \(length) bytes, over the limit of \(limits.maxBulkBytes)")
        }
        let size = Int(length)
        guard buffer.readableBytes >= size + 2 else { return nil }
        let body = buffer.readSlice(length: size)!
        guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
            throw RESPProtocolError("a bulk string not followed by \\r\\n")
        }
        return .some(body)
    }

    private func checkedCount(_ count: Int64) throws -> Int {
        guard count >= 0 else { throw RESPProtocolError("a negative aggregate length \(count)") }
        guard count <= limits.maxElements else {
            throw RESPProtocolError("an aggregate of \(count) elements, over the limit of \(limits.maxElements)")
        }
        return Int(count)
    }

    private static func integer(_ line: ByteBuffer, _ what: String) throws -> Int64 {
        let view = line.readableBytesView
        var index = view.startIndex
        var negative = false
        if index < view.endIndex, view[index] == UInt8(ascii: "-") || view[index] == UInt8(ascii: "+") {
            negative = view[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < view.endIndex, view.endIndex - index <= 19 else {
            throw RESPProtocolError("a malformed \(what)")
        }
        var value: Int64 = 0
        while index < view.endIndex {
            let byte = view[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw RESPProtocolError("a malformed \(what)")
            }
            let digit = Int64(byte - UInt8(ascii: "0"))
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) =
                negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { throw RESPProtocolError("a \(what) out of range") }
            value = sum
            index += 1
        }
        return value
    }

    private static func double(_ line: ByteBuffer) throws -> Double {
        let text = String(buffer: line)
        switch text {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default:
            guard let value = Double(text), value.isFinite else { throw RESPProtocolError("a malformed double") }
            return value
        }
    }
}
