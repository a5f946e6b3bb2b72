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
            ("", "empty duration"),
            ("10", "the unit is missing"),
            ("s", "does not start with a number"),
            ("-5s", "does not start with a number"),
            ("+5s", "does not start with a number"),
            (" 5s", "does not start with a number"),
            ("1.5s", "unknown unit \".5s\""),
            ("5 s", "unknown unit \" s\""),
            ("5S", "unknown unit \"S\""),
            ("5sec", "unknown unit \"sec\""),
            ("5us", "unknown unit \"us\""),
            ("1_000ms", "unknown unit \"_000ms\""),
            ("5s ", "unknown unit \"s \""),
            ("١٢s", "does not start with a number"),
        ]
    )
    func refuses(text: String, expected: String) {
        let error = #expect(throws: BatonError.self) { try parseBatonDuration(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("250ms, 10s, 5m, 2h, 7d") == true)
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
