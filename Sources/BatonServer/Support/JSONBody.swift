import Foundation
import Hummingbird

/// A JSON value as read from a request, keeping what the client wrote apart: a whole number is not a fraction,
/// a boolean is not a number, a string is not a number.
enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else {
            self = .array(try container.decode([JSONValue].self))
        }
    }

    /// What the value is, for error messages: "a string", "a fraction", ...
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer: "a whole number"
        case .number: "a fraction"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// The JSON object of a request body, with readers that say exactly what is wrong with a field.
struct JSONBody: Sendable {
    let fields: [String: JSONValue]

    /// Reads the request body (at most `limit` bytes) and parses it as one JSON object.
    /// - Throws: ``APIError`` 400 for a body over the limit, an empty body, malformed JSON or a body that is not an
    ///   object.
    static func read(_ request: Request, limit: Int) async throws -> JSONBody {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.badRequest("the request body is \(length) bytes; the limit is \(limit) bytes")
        }
        var buffer = ByteBuffer()
        for try await part in request.body {
            if buffer.readableBytes + part.readableBytes > limit {
                throw APIError.badRequest("the request body is larger than the limit of \(limit) bytes")
            }
            buffer.writeImmutableBuffer(part)
        }
        return try JSONBody(buffer)
    }

    init(_ buffer: ByteBuffer) throws(APIError) {
        guard buffer.readableBytes > 0 else {
            throw .badRequest("the request body is empty; send a JSON object")
        }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { (bytes) throws(JSONParser.Failure) in
                try JSONParser.parse(bytes)
            }
        } catch {
            throw .badRequest("the request body is not valid JSON: \(error)")
        }
        guard case .object(let fields) = value else {
            throw .badRequest("the request body must be a JSON object, not \(value.kind)")
        }
        self.fields = fields
    }

    /// A string field; nil if absent or null.
    func string(_ name: String) throws(APIError) -> String? {
        switch fields[name] {
        case nil, .null: return nil
        case .string(let value): return value
        case let other?: throw .badRequest("field \"\(name)\" must be a string, not \(other.kind)")
        }
    }

    /// A string field that must be present.
    func requiredString(_ name: String) throws(APIError) -> String {
        guard let value = try string(name) else { throw .badRequest("field \"\(name)\" is missing (a string)") }
        return value
    }

    /// A whole-number field; nil if absent or null.
    func integer(_ name: String, _ what: String = "a whole number") throws(APIError) -> Int64? {
        switch fields[name] {
        case nil, .null: return nil
        case .integer(let value): return value
        case let other?: throw .badRequest("field \"\(name)\" must be \(what), not \(other.kind)")
        }
    }

    /// A whole-number field that must be present.
    func requiredInteger(_ name: String, _ what: String = "a whole number") throws(APIError) -> Int64 {
        guard let value = try integer(name, what) else { throw .badRequest("field \"\(name)\" is missing (\(what))") }
        return value
    }

    /// A duration in milliseconds within `range`; nil if absent or null.
    func milliseconds(_ name: String, in range: ClosedRange<Int64>) throws(APIError) -> Duration? {
        guard let value = try integer(name, "a whole number of milliseconds") else { return nil }
        guard range.contains(value) else {
            throw .badRequest(
                "field \"\(name)\" is \(value); it must be from \(range.lowerBound) to \(range.upperBound) milliseconds"
            )
        }
        return .milliseconds(value)
    }

    /// A duration in milliseconds within `range` that must be present.
    func requiredMilliseconds(_ name: String, in range: ClosedRange<Int64>) throws(APIError) -> Duration {
        guard let value = try milliseconds(name, in: range) else {
            throw .badRequest(
                "field \"\(name)\" is missing (\(range.lowerBound) to \(range.upperBound) milliseconds)"
            )
        }
        return value
    }
}
