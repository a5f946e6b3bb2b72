import Foundation
import Testing

@testable import baton

/// `baton run` gives each term's command a `TRACEPARENT` of its own, in the trace `baton` was started in.
extension RunCommandTests {
    static let upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    /// Runs `baton run` on `key` once; returns the command's `TRACEPARENT` (read), its `TRACESTATE` and baton's
    /// standard error.
    static func traceOfOneTerm(
        _ scratch: Scratch, key: String, environment: [String: String?], round: String? = nil
    ) throws -> (TraceParent, String, String) {
        let mode = round.map { ["--round", $0] } ?? []
        let (status, output, errors) = try runToEnd(
            scratch.store + ["run", "--key", key, "--id", "host-a"] + mode + [
                "--", "sh", "-c", "printf '%s %s' \"$TRACEPARENT\" \"$TRACESTATE\"",
            ],
            in: scratch, environment: environment)
        #expect(status == 0, "\(errors)")
        let fields = output.split(separator: " ", omittingEmptySubsequences: false)
        let parent = try #require(TraceParent(header: String(fields[0])), "TRACEPARENT was \(output)")
        return (parent, fields.dropFirst().joined(separator: " "), errors)
    }

    @Test("each term's command joins the trace baton was started in, as a span of its own, with its TRACESTATE")
    func termsJoinTheInheritedTrace() throws {
        let scratch = try Scratch()
        let upstream = try #require(TraceParent(header: Self.upstream))
        let environment = ["TRACEPARENT": Self.upstream, "TRACESTATE": "congo=t61rcWkgMzE"]
        let (first, firstState, errors) = try Self.traceOfOneTerm(scratch, key: "traced", environment: environment)
        let (second, secondState, _) = try Self.traceOfOneTerm(scratch, key: "traced", environment: environment)
        for term in [first, second] {
            #expect(term.traceID == upstream.traceID)
            #expect(term.flags == upstream.flags)
            #expect(term.spanID != upstream.spanID)
        }
        #expect(first.spanID != second.spanID, "two terms, one span ID")
        #expect(firstState == "congo=t61rcWkgMzE" && secondState == firstState)
        #expect(errors.contains("elected: traced (token 1, trace 4bf92f3577b34da6a3ce929d0e0e4736); running sh"))
    }

    @Test("without a valid TRACEPARENT each term starts a sampled trace of its own, and a stray TRACESTATE is dropped")
    func termsStartTracesOfTheirOwn() throws {
        let scratch = try Scratch()
        for inherited in [nil, "00-zz-not-a-traceparent-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"]
        {
            let environment: [String: String?] = ["TRACEPARENT": inherited, "TRACESTATE": "congo=t61rcWkgMzE"]
            let (first, firstState, _) = try Self.traceOfOneTerm(scratch, key: "new", environment: environment)
            let (second, _, _) = try Self.traceOfOneTerm(scratch, key: "new", environment: environment)
            #expect(first.traceID != second.traceID, "two terms in one trace (TRACEPARENT \(inherited ?? "none"))")
            #expect(first.flags == 0x01)
            #expect(firstState == "", "TRACESTATE without a valid parent: \(firstState)")
        }
    }

    @Test("cron mode: the round's command joins the inherited trace too")
    func roundJoinsTheInheritedTrace() throws {
        let scratch = try Scratch()
        let upstream = try #require(TraceParent(header: Self.upstream))
        let (round, _, _) = try Self.traceOfOneTerm(
            scratch, key: "nightly", environment: ["TRACEPARENT": Self.upstream], round: "2026-12-06")
        #expect(round.traceID == upstream.traceID && round.spanID != upstream.spanID)
    }
}
