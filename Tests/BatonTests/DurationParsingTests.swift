import Baton
import Testing

@Suite("parseBatonDuration")
struct DurationParsingTests {
    @Test(
        "accepts a whole number with a unit",
        arguments: [
            ("250ms", Duration.milliseconds(250)),
            ("0ms", .zero),
            ("1500ms", .milliseconds(1500)),
            ("10s", .seconds(10)),
            ("5m", .seconds(300)),
            ("2h", .seconds(7200)),
            ("7d", .seconds(7 * 86_400)),
            ("007s", .seconds(7)),
            ("1000000d", .seconds(86_400_000_000)),
        ]
    )
    func accepts(text: String, expected: Duration) throws {
        #expect(try parseBatonDuration(text) == expected)
    }

    @Test(
        "refuses anything else, saying what is wrong and what is accepted",
        arguments: [
            "empty duration": [""],
            "the unit is missing": ["10"],
            "does not start with a number": ["s", "-5s", "+5s", " 5s", "١٢s"],
        ]
    )
    func refuses(expected: String, texts: [String]) {
        for text in texts { expectRefusal(of: text, saying: expected) }
    }

    @Test(
        "refuses an unknown unit, quoting it",
        arguments: [
            "1.5s": ".5s", "5 s": " s", "5S": "S", "5sec": "sec", "5us": "us", "1_000ms": "_000ms", "5s ": "s ",
        ]
    )
    func refusesUnknownUnits(text: String, unit: String) {
        expectRefusal(of: text, saying: "unknown unit \"\(unit)\"")
    }

    /// `text` is refused as an invalid argument whose message says `expected` and lists the accepted forms.
    private func expectRefusal(
        of text: String,
        saying expected: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let error = #expect(throws: BatonError.self, "\(text)", sourceLocation: sourceLocation) {
            try parseBatonDuration(text)
        }
        #expect(error?.code == .invalidArgument, sourceLocation: sourceLocation)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")", sourceLocation: sourceLocation)
        #expect(error?.message.contains("250ms, 10s, 5m, 2h, 7d") == true, sourceLocation: sourceLocation)
    }

    @Test(
        "refuses values beyond a million days", arguments: ["1000001d", "86400000000001ms", "99999999999999999999ms"])
    func refusesHugeValues(text: String) {
        let error = #expect(throws: BatonError.self) { try parseBatonDuration(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("too large") == true)
    }

    @Test("error messages escape what they show")
    func escapes() {
        let error = #expect(throws: BatonError.self) { try parseBatonDuration("5\n") }
        #expect(error?.message.contains(#""5\n""#) == true)
    }
}
