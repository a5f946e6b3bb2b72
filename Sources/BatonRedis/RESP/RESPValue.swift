import NIOCore

/// One value of the Redis serialization protocol, RESP2 or RESP3, as the server sends it.
///
/// RESP2 sends only simple strings, errors, integers, bulk strings and arrays (a null bulk string or a null
/// array decodes to ``null``); RESP3 (after `HELLO 3`) adds the other cases. Attributes (`|`), which a RESP3
/// server may send ahead of a reply, are decoded and dropped: the decoder yields the reply they annotate.
public enum RESPValue: Sendable, Hashable {
    /// `+OK`: a short text without line breaks.
    case simpleString(String)
    /// `-ERR ...` or `!<length>` (a bulk error): the server refused the command. The text starts with the
    /// error's code (`ERR`, `NOSCRIPT`, `WRONGPASS`, ...).
    case error(String)
    /// `:42`.
    case integer(Int64)
    /// `$<length>`: binary-safe bytes.
    case bulkString(ByteBuffer)
    /// `=<length>`: a bulk string with a three-letter format (`txt`, `mkd`).
    case verbatimString(format: String, text: ByteBuffer)
    /// `_`, or RESP2's `$-1` and `*-1`.
    case null
    /// `,3.14` (also `inf`, `-inf`, `nan`).
    case double(Double)
    /// `#t` or `#f`.
    case boolean(Bool)
    /// `(<digits>`: an integer of any size, as its decimal text.
    case bigNumber(String)
    /// `*<count>`.
    case array([RESPValue])
    /// `~<count>`: an unordered collection.
    case set([RESPValue])
    /// `%<count>`: key and value pairs, in the order sent.
    case map([RESPPair])
    /// `><count>`: out-of-band data (pub/sub messages, invalidations), not the reply to a command.
    case push([RESPValue])

    /// The value as text, for simple strings, bulk and verbatim strings, integers and big numbers; nil otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let text), .bigNumber(let text): text
        case .bulkString(let bytes), .verbatimString(_, let bytes): String(buffer: bytes)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The value as an integer, for integers and for strings holding a decimal integer; nil otherwise.
    public var int64: Int64? {
        switch self {
        case .integer(let value): value
        case .simpleString, .bulkString, .bigNumber: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The elements of an array, set or push; nil otherwise.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let values), .set(let values), .push(let values): values
        default: nil
        }
    }

    /// Whether the value is ``null``.
    public var isNull: Bool { self == .null }

    /// The error text, if the value is an error.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}

/// One entry of a RESP3 map.
public struct RESPPair: Sendable, Hashable {
    /// The entry's key.
    public var key: RESPValue
    /// The entry's value.
    public var value: RESPValue

    /// Creates an entry.
    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}

extension RESPValue {
    /// A bulk string holding `text` as UTF-8.
    public static func bulk(_ text: String) -> RESPValue {
        .bulkString(ByteBuffer(string: text))
    }
}
