import Foundation
import Testing

@testable import BatonServer

@Suite("The request body's JSON parser")
struct JSONParserTests {
    private func parse(_ text: String) throws -> JSONValue {
        try Array(text.utf8).withUnsafeBytes { bytes in try JSONParser.parse(bytes) }
    }

    @Test(
        "valid texts read as Foundation's decoder reads them",
        arguments: [
            #"{"holder": "a", "ttl_ms": 60000}"#,
            #"{"holder":"a","ttl_ms":60000,"wait_ms":0,"metadata":null}"#,
            " \t\r\n{ \"a\" : [ 1 , -2 , 3.5 , -0.25e2 , 1E3 , true , false , null , { } , [ ] ] } \n",
            #"{"escapes": "\"\\\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude00"}"#,
            #"{"raw": "héllo € 😀"}"#,
            #"{"big": 9223372036854775807, "small": -9223372036854775808, "over": 9223372036854775808}"#,
            #"{"zero": 0, "negativeZero": -0, "fraction": 0.5, "exp": 2e-3}"#,
            #""just a string""#,
            "[]",
            "42",
        ])
    func matchesFoundation(text: String) throws {
        let ours = try parse(text)
        let foundations = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(ours == foundations, "\(text)")
    }

    @Test("whole values that fit are integers, others are fractions")
    func numbers() throws {
        #expect(try parse("60000") == .integer(60000))
        #expect(try parse("-1") == .integer(-1))
        #expect(try parse("1.0") == .integer(1))
        #expect(try parse("6e4") == .integer(60000))
        #expect(try parse("1.5") == .number(1.5))
        #expect(try parse("1e-2") == .number(0.01))
        #expect(try parse("9223372036854775808") == .number(9_223_372_036_854_775_808))
    }

    @Test(
        "malformed texts are refused with the offset of the fault",
        arguments: [
            ("", "expected a value at byte 0"),
            (#"{"holder": "a", "#, "expected a field name in double quotes at byte 16"),
            (#"{"holder" "a"}"#, "expected ':' after a field name at byte 10"),
            (#"{"a": 1 "b": 2}"#, "expected ',' or '}' in an object at byte 8"),
            ("[1, 2", "expected ',' or ']' in an array at byte 5"),
            ("[1,]", "expected a value at byte 3"),
            ("{} {}", "unexpected text after the value at byte 3"),
            ("tru", "unexpected end of the text in a literal at byte 0"),
            ("nul!", "unexpected character in a literal (true, false or null) at byte 0"),
            ("01", "a number may not start with 0 at byte 1"),
            ("1.", "expected a digit after '.' at byte 2"),
            ("1e", "expected a digit in the exponent at byte 2"),
            ("-", "expected a digit at byte 1"),
            ("1e999", "a number too large at byte 0"),
            ("\"a\u{1}b\"", "a control character in a string (escape it) at byte 2"),
            (#""\x""#, "an unknown escape at byte 2"),
            (#""\u12G4""#, "expected four hex digits after \\u at byte 5"),
            (#""\ud83d""#, "a high surrogate escape without its low surrogate at byte 7"),
            (#""\ude00""#, "a low surrogate escape without its high surrogate at byte 7"),
            (#""abc"#, "unexpected end of the text in a string at byte 4"),
            ("{'a': 1}", "expected a field name in double quotes at byte 1"),
            (#"{"a": 1, "b": {"a": 2}, "a": 3}"#, "a field name given twice in one object at byte 24"),
        ])
    func malformed(text: String, expected: String) {
        let failure = #expect(throws: JSONParser.Failure.self) { try parse(text) }
        #expect(failure?.description.contains(expected) == true, "\(failure?.description ?? "no error") for \(text)")
    }

    @Test("bytes that are not UTF-8 in a string are refused")
    func notUTF8() {
        let bytes: [UInt8] = Array(#"{"holder": ""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        let failure = #expect(throws: JSONParser.Failure.self) {
            try bytes.withUnsafeBytes { raw in try JSONParser.parse(raw) }
        }
        #expect(failure?.description == "a string that is not valid UTF-8 at byte 12")
    }

    @Test("nesting is limited, so a deep text cannot exhaust the stack")
    func depth() throws {
        let deep =
            String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        _ = try parse(deep)
        let deeper = "[" + deep + "]"
        let failure = #expect(throws: JSONParser.Failure.self) { try parse(deeper) }
        #expect(failure?.description.contains("nested deeper than \(JSONParser.maxDepth) levels") == true)
        let hostile = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParser.Failure.self) { try parse(hostile) }
    }

    @Test("random documents read back as they were written")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let value = Self.randomValue(depth: 0, using: &generator)
            let text = Self.render(value)
            #expect(try parse(text) == value, "\(text)")
        }
    }

    private static func randomValue(depth: Int, using generator: inout some RandomNumberGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth < 4 ? 8 : 6), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .integer(Int64.random(in: .min ... .max, using: &generator))
        case 3: return .number(Double(Int.random(in: -1_000_000...1_000_000, using: &generator) * 2 + 1) / 4)
        case 4, 5:
            let alphabet = Array("aZ9 \"\\/\n\t\u{1}é€😀")
            return .string(
                String((0..<Int.random(in: 0..<12, using: &generator)).map { _ in alphabet.randomElement()! }))
        case 6:
            return .array(
                (0..<Int.random(in: 0..<4, using: &generator)).map { _ in
                    randomValue(depth: depth + 1, using: &generator)
                })
        default:
            var fields: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0..<4, using: &generator) {
                fields["f\(index)"] = randomValue(depth: depth + 1, using: &generator)
            }
            return .object(fields)
        }
    }

    private static func render(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .integer(let integer): return String(integer)
        case .number(let number): return "\(number)"
        case .string(let text): return quoted(text)
        case .array(let elements): return "[" + elements.map(render).joined(separator: ", ") + "]"
        case .object(let fields):
            return "{" + fields.map { quoted($0.key) + ": " + render($0.value) }.joined(separator: ",") + "}"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "😀": out += "\\ud83d\\ude00"
            default:
                if scalar.value < 0x20 {
                    out +=
                        "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                        + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
