import Testing

@testable import baton

@Suite("TRACEPARENT: reading, writing and the terms' trace contexts")
struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// A predictable generator: `zeros` zeros, then counting up from `count`.
    struct Counting: RandomNumberGenerator {
        var count: UInt64
        var zeros = 0
        mutating func next() -> UInt64 {
            if zeros > 0 {
                zeros -= 1
                return 0
            }
            defer { count &+= 1 }
            return count
        }
    }

    @Test("a valid header is read and written back unchanged")
    func roundTrip() throws {
        let parent = try #require(TraceParent(header: Self.valid))
        #expect(parent.header == Self.valid)
        #expect(parent.traceIDString == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(parent.flags == 1)
        #expect(parent.environmentEntry == "TRACEPARENT=\(Self.valid)")
        #expect(TraceParent(header: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.flags == 0)
    }

    @Test(
        "invalid headers are refused",
        arguments: [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ])
    func refused(_ header: String) {
        #expect(TraceParent(header: header) == nil)
    }

    @Test("a later version is read by its first four fields")
    func laterVersion() throws {
        let later = try #require(
            TraceParent(header: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"))
        #expect(later.header == Self.valid)
    }

    @Test("a term's context: a new span of the parent's trace, or a new sampled trace")
    func termContexts() throws {
        let parent = try #require(TraceParent(header: Self.valid))
        var generator = Counting(count: 0)
        let child = TraceParent.term(in: parent, using: &generator)
        #expect(child.traceID == parent.traceID && child.flags == parent.flags)
        #expect(child.spanID != parent.spanID)
        let other = TraceParent.term(in: parent, using: &generator)
        #expect(other.spanID != child.spanID)
        let unsampled = try #require(
            TraceParent(header: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        #expect(TraceParent.term(in: unsampled, using: &generator).flags == 0, "the parent's sampling decision is kept")

        let fresh = TraceParent.term(in: nil, using: &generator)
        let again = TraceParent.term(in: nil, using: &generator)
        #expect(fresh.flags == 1)
        #expect(fresh.traceID != again.traceID)
        #expect(TraceParent(header: fresh.header) == fresh)
        // An all-zero ID is never made, even by a generator that starts with zeros.
        var zeros = Counting(count: 1, zeros: 40)
        let drawn = TraceParent.term(in: nil, using: &zeros)
        #expect(drawn.traceID.contains { $0 != 0 } && drawn.spanID.contains { $0 != 0 })
    }

    @Test("the commands' environment: TRACEPARENT removed, TRACESTATE kept only beside a valid parent")
    func inheritedEnvironment() {
        let kept = TraceParent.inherited(["TRACEPARENT": Self.valid, "TRACESTATE": "a=b", "HOME": "/root"])
        #expect(kept.parent?.header == Self.valid)
        #expect(kept.environment == ["TRACESTATE": "a=b", "HOME": "/root"])
        let dropped = TraceParent.inherited(["TRACEPARENT": "garbage", "TRACESTATE": "a=b", "HOME": "/root"])
        #expect(dropped.parent == nil)
        #expect(dropped.environment == ["HOME": "/root"])
    }
}
