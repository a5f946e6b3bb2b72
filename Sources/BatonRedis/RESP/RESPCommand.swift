import NIOCore

/// A command to send: its name and arguments, each a binary-safe string, encoded as a RESP array of bulk
/// strings (the one form Redis accepts from clients).
public struct RESPCommand: Sendable, Hashable, CustomStringConvertible {
    /// The name followed by the arguments.
    public var parts: [ByteBuffer]

    /// A command from text parts: `RESPCommand("SET", "k", "v")`.
    public init(_ name: String, _ arguments: String...) {
        self.init(name, arguments)
    }

    /// A command from text parts.
    public init(_ name: String, _ arguments: [String]) {
        parts = [ByteBuffer(string: name)] + arguments.map { ByteBuffer(string: $0) }
    }

    /// A command from binary parts, the name first.
    public init(parts: [ByteBuffer]) {
        self.parts = parts
    }

    /// The command's name, upper-cased.
    public var name: String { parts.first.map { String(buffer: $0).uppercased() } ?? "" }

    /// Appends the command's RESP encoding to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeString(String(parts.count))
        buffer.writeStaticString("\r\n")
        for part in parts {
            buffer.writeInteger(UInt8(ascii: "$"))
            buffer.writeString(String(part.readableBytes))
            buffer.writeStaticString("\r\n")
            buffer.writeImmutableBuffer(part)
            buffer.writeStaticString("\r\n")
        }
    }

    /// The command's name only: arguments may hold secrets (AUTH) or user data, so they are never printed.
    public var description: String { name }
}
