import NIOCore
import Testing

@testable import BatonRedis

/// The decoder on every RESP2 and RESP3 type, on frames split at every byte, and on random and truncated input.
@Suite struct RESPDecoderTests {
    /// Frames and the values they decode to.
    static let samples: [(String, RESPValue)] = [
        ("+OK\r\n", .simpleString("OK")),
        ("-ERR unknown command\r\n", .error("ERR unknown command")),
        (":0\r\n", .integer(0)),
        (":-9223372036854775808\r\n", .integer(.min)),
        (":9223372036854775807\r\n", .integer(.max)),
        ("$5\r\nhello\r\n", .bulk("hello")),
        ("$0\r\n\r\n", .bulk("")),
        ("$4\r\na\r\nb\r\n", .bulk("a\r\nb")),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("_\r\n", .null),
        (",3.5\r\n", .double(3.5)),
        (",-inf\r\n", .double(-.infinity)),
        ("#t\r\n", .boolean(true)),
        ("#f\r\n", .boolean(false)),
        ("(3492890328409238509324850943850943825024385\r\n", .bigNumber("3492890328409238509324850943850943825024385")),
        ("!21\r\nSYNTAX invalid syntax\r\n", .error("SYNTAX invalid syntax")),
        ("=15\r\ntxt:Some string\r\n", .verbatimString(format: "txt", text: ByteBuffer(string: "Some string"))),
        ("*0\r\n", .array([])),
        ("*2\r\n$1\r\na\r\n:1\r\n", .array([.bulk("a"), .integer(1)])),
        ("*2\r\n*1\r\n+x\r\n*0\r\n", .array([.array([.simpleString("x")]), .array([])])),
        ("~2\r\n+a\r\n+b\r\n", .set([.simpleString("a"), .simpleString("b")])),
        (
            "%2\r\n+first\r\n:1\r\n+second\r\n_\r\n",
            .map([
                RESPPair(key: .simpleString("first"), value: .integer(1)),
                RESPPair(key: .simpleString("second"), value: .null),
            ])
        ),
        (
            ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\n0\r\n",
            .push([.bulk("message"), .bulk("ch"), .bulk("0")])
        ),
        ("|1\r\n+key-popularity\r\n%0\r\n:7\r\n", .integer(7)),
    ]

    @Test func decodesEveryType() throws {
        for (frame, expected) in Self.samples {
            var decoder = RESPDecoder()
            var buffer = ByteBuffer(string: frame)
            let value = try decoder.decode(buffer: &buffer)
            #expect(value == expected, "frame \(frame.debugDescription)")
            #expect(buffer.readableBytes == 0, "frame \(frame.debugDescription) left bytes")
        }
    }

    @Test func nanDecodes() throws {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer(string: ",nan\r\n")
        guard case .double(let value) = try decoder.decode(buffer: &buffer) else {
            Issue.record("nan did not decode to a double")
            return
        }
        #expect(value.isNaN)
    }

    /// Every prefix of every frame is incomplete (nil, nothing consumed); the whole frame then decodes.
    @Test func partialFramesWaitForTheRest() throws {
        for (frame, expected) in Self.samples {
            let bytes = Array(frame.utf8)
            for cut in 0..<bytes.count {
                var decoder = RESPDecoder()
                var buffer = ByteBuffer(bytes: bytes[..<cut])
                #expect(try decoder.decode(buffer: &buffer) == nil, "prefix \(cut) of \(frame.debugDescription)")
                #expect(buffer.readerIndex == 0)
                buffer.writeBytes(bytes[cut...])
                #expect(try decoder.decode(buffer: &buffer) == expected)
            }
        }
    }

    /// Several frames in one buffer decode one after the other (pipelined replies).
    @Test func backToBackFrames() throws {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer(string: Self.samples.map(\.0).joined())
        for (frame, expected) in Self.samples {
            #expect(try decoder.decode(buffer: &buffer) == expected, "frame \(frame.debugDescription)")
        }
        #expect(try decoder.decode(buffer: &buffer) == nil)
    }

    @Test(arguments: [
        "?what\r\n", ":12a\r\n", ":\r\n", ":99999999999999999999\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "$x\r\n",
        "*-2\r\n", "+OK\n", "#x\r\n", ",abc\r\n", "_x\r\n", "(12x\r\n", "=2\r\nab\r\n", "!-1\r\n", "%-1\r\n",
        "$3\r\nabc\n\n",
    ])
    func malformedFramesThrow(_ frame: String) {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer(string: frame)
        #expect(throws: RESPProtocolError.self) { try decoder.decode(buffer: &buffer) }
    }

    @Test func limitsAreEnforced() {
        var limits = RESPDecoder.Limits()
        limits.maxBulkBytes = 10
        limits.maxElements = 3
        limits.maxDepth = 2
        limits.maxLineBytes = 8
        for frame in ["$11\r\n", "*4\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "+0123456789abc", "%4\r\n"] {
            var decoder = RESPDecoder(limits: limits)
            var buffer = ByteBuffer(string: frame)
            #expect(throws: RESPProtocolError.self, "frame \(frame.debugDescription)") {
                try decoder.decode(buffer: &buffer)
            }
        }
    }

    /// Random bytes, and valid frames with random bytes changed or cut off: the decoder returns a value, nil or
    /// a protocol error, never traps, never consumes an incomplete frame and never reads past the buffer.
    @Test func fuzz() {
        var generator = SplitMix64(seed: 0x5EED)
        let alphabet = Array("+-:$*_,#(!=%~>|\r\n0123456789-abc".utf8)
        for iteration in 0..<20000 {
            var bytes: [UInt8]
            if iteration.isMultiple(of: 2) {
                let count = Int.random(in: 0..<40, using: &generator)
                bytes = (0..<count).map { _ in
                    Bool.random(using: &generator)
                        ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
                }
            } else {
                bytes = Array(Self.samples.randomElement(using: &generator)!.0.utf8)
                for _ in 0..<Int.random(in: 0...2, using: &generator) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = alphabet.randomElement(
                        using: &generator)!
                }
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
            }
            var decoder = RESPDecoder()
            var buffer = ByteBuffer(bytes: bytes)
            while true {
                let before = buffer.readerIndex
                do {
                    guard try decoder.decode(buffer: &buffer) != nil else {
                        #expect(buffer.readerIndex == before)
                        break
                    }
                    #expect(buffer.readerIndex > before)
                } catch {
                    #expect(error is RESPProtocolError)
                    break
                }
            }
        }
    }
}

/// A small deterministic generator, so a fuzz failure reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
