/// A strict JSON parser (RFC 8259) for request bodies, straight from the bytes to a ``JSONValue``: no `Data` copy,
/// no `Decodable` machinery and no error thrown for a field that is simply of another kind, so a small body costs
/// a few microseconds.
///
/// A number whose value is whole and fits in 64 bits (`60000`, also `6e4`) is ``JSONValue/integer(_:)``, any other
/// number ``JSONValue/number(_:)``. A field name given twice in one object is an error. Strings must be valid UTF-8; `\u` escapes may pair surrogates, a lone surrogate is an
/// error. Nesting is limited to ``maxDepth`` levels. Errors name the byte offset and what was expected, never the
/// text, which may hold a secret.
struct JSONParser {
    /// The deepest nesting of arrays and objects accepted.
    static let maxDepth = 64

    /// Why a text is not JSON, with the offset of the byte where it went wrong.
    struct Failure: Error, CustomStringConvertible {
        var reason: String
        var offset: Int

        var description: String { "\(reason) at byte \(offset)" }
    }

    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    private var depth = 0

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Parses `bytes` as one JSON value with nothing but white space around it.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.skipSpace()
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == bytes.count else { throw parser.failure("unexpected text after the value") }
        return value
    }

    // MARK: Values

    private mutating func value() throws(Failure) -> JSONValue {
        guard let byte = peek() else { throw failure("unexpected end of the text, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        default:
            throw failure("unexpected character, expected a value")
        }
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enter()
        index += 1
        var fields: [String: JSONValue] = [:]
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(fields)
        }
        while true {
            skipSpace()
            guard peek() == UInt8(ascii: "\"") else { throw failure("expected a field name in double quotes") }
            let nameOffset = index
            let name = try string()
            guard fields[name] == nil else {
                throw Failure(reason: "a field name given twice in one object", offset: nameOffset)
            }
            skipSpace()
            guard peek() == UInt8(ascii: ":") else { throw failure("expected ':' after a field name") }
            index += 1
            skipSpace()
            fields[name] = try value()
            skipSpace()
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                depth -= 1
                return .object(fields)
            default:
                throw failure("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enter()
        index += 1
        var elements: [JSONValue] = []
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipSpace()
            elements.append(try value())
            skipSpace()
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                depth -= 1
                return .array(elements)
            default:
                throw failure("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        guard depth <= Self.maxDepth else { throw failure("nested deeper than \(Self.maxDepth) levels") }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        let count = word.utf8.count
        guard bytes.count - index >= count else { throw failure("unexpected end of the text in a literal") }
        for (offset, expected) in word.utf8.enumerated() where bytes[index + offset] != expected {
            throw failure("unexpected character in a literal (true, false or null)")
        }
        index += count
    }

    // MARK: Numbers

    private mutating func number() throws(Failure) -> JSONValue {
        let start = index
        var whole = true
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw failure("expected a digit") }
        if first == UInt8(ascii: "0") {
            index += 1
            if let next = peek(), isDigit(next) { throw failure("a number may not start with 0") }
        } else {
            skipDigits()
        }
        if peek() == UInt8(ascii: ".") {
            whole = false
            index += 1
            guard let next = peek(), isDigit(next) else { throw failure("expected a digit after '.'") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            whole = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let next = peek(), isDigit(next) else { throw failure("expected a digit in the exponent") }
            skipDigits()
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if whole, let integer = Int64(text) { return .integer(integer) }
        guard let number = Double(text), number.isFinite else {
            index = start
            throw failure("a number too large")
        }
        // A whole value written with a fraction or an exponent (`1.0`, `1e3`) is whole, as Foundation reads it.
        if let integer = Int64(exactly: number) { return .integer(integer) }
        return .number(number)
    }

    private mutating func skipDigits() {
        while let byte = peek(), isDigit(byte) { index += 1 }
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    // MARK: Strings

    /// A string, from its opening quote (at `index`) to past its closing one.
    private mutating func string() throws(Failure) -> String {
        index += 1
        let start = index
        // The usual case, a string without escapes: its bytes as they are, checked as UTF-8.
        while let byte = peek() {
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return try utf8(raw, at: start)
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw failure("a control character in a string (escape it)") }
            index += 1
        }
        var decoded = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: decoded, as: UTF8.self) else {
                    throw Failure(reason: "a string that is not valid UTF-8", offset: start)
                }
                return text
            case UInt8(ascii: "\\"):
                try escape(into: &decoded)
            case 0..<0x20:
                throw failure("a control character in a string (escape it)")
            default:
                decoded.append(byte)
                index += 1
            }
        }
        throw failure("unexpected end of the text in a string")
    }

    private func utf8(_ raw: UnsafeRawBufferPointer, at start: Int) throws(Failure) -> String {
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw Failure(reason: "a string that is not valid UTF-8", offset: start)
        }
        return text
    }

    /// One escape, from its backslash (at `index`), appended as UTF-8.
    private mutating func escape(into decoded: inout [UInt8]) throws(Failure) {
        index += 1
        guard let kind = peek() else { throw failure("unexpected end of the text in an escape") }
        index += 1
        switch kind {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(kind)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try hex4())
            if (0xD800...0xDBFF).contains(scalar) {
                guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                else { throw failure("a high surrogate escape without its low surrogate") }
                index += 2
                let low = UInt32(try hex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw failure("a high surrogate escape without its low") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw failure("a low surrogate escape without its high surrogate")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw failure("an escape that is not a character") }
            decoded.append(contentsOf: UTF8.encode(unicode)!)
        default:
            index -= 1
            throw failure("an unknown escape")
        }
    }

    private mutating func hex4() throws(Failure) -> UInt16 {
        guard bytes.count - index >= 4 else { throw failure("unexpected end of the text in a \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("expected four hex digits after \\u")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    // MARK: Bytes

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipSpace() {
        while let byte = peek(),
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
                || byte == UInt8(ascii: "\t")
        {
            index += 1
        }
    }

    private func failure(_ reason: String) -> Failure {
        Failure(reason: reason, offset: index)
    }
}
