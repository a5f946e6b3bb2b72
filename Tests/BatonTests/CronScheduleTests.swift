import Foundation
import Testing

@testable import Baton

@Suite("Cron schedules")
struct CronScheduleTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!

    func date(_ text: String) -> Date {
        try! Date(text, strategy: .iso8601)
    }

    func next(_ expression: String, after: String, in zone: TimeZone = utc, count: Int = 1) throws -> [String] {
        let schedule = try CronSchedule(expression, timeZone: zone)
        var cursor = date(after)
        var ticks: [String] = []
        for _ in 0..<count {
            guard let tick = schedule.nextTick(after: cursor) else { break }
            ticks.append(schedule.roundName(of: tick))
            cursor = tick
        }
        return ticks
    }

    @Test("fields: values, ranges, steps, lists and names")
    func fields() throws {
        #expect(
            try next("*/15 9-10 * * *", after: "2026-12-06T09:50:00Z", count: 3)
                == ["2026-12-06T10:00:00Z", "2026-12-06T10:15:00Z", "2026-12-06T10:30:00Z"])
        #expect(try next("0 8 * * mon-fri", after: "2026-12-04T09:00:00Z") == ["2026-12-07T08:00:00Z"])  // Fri → Mon
        #expect(try next("30 6 1,15 * *", after: "2026-12-01T07:00:00Z") == ["2026-12-15T06:30:00Z"])
        #expect(try next("0 0 1 JAN *", after: "2026-03-01T00:00:00Z") == ["2027-01-01T00:00:00Z"])
        #expect(
            try next("5/20 * * * *", after: "2026-12-06T10:00:00Z", count: 3)
                == ["2026-12-06T10:05:00Z", "2026-12-06T10:25:00Z", "2026-12-06T10:45:00Z"])
        // 7 is Sunday too.
        #expect(try next("0 12 * * 7", after: "2026-12-06T13:00:00Z") == ["2026-12-13T12:00:00Z"])
        // Six fields: seconds first.
        #expect(
            try next("*/20 * * * * *", after: "2026-12-06T10:00:05Z", count: 2)
                == ["2026-12-06T10:00:20Z", "2026-12-06T10:00:40Z"])
    }

    @Test("macros, 29 February and the day-of-month/day-of-week union")
    func macrosAndDays() throws {
        #expect(try next("@daily", after: "2026-12-06T10:00:00Z") == ["2026-12-07T00:00:00Z"])
        #expect(try next("@hourly", after: "2026-12-06T10:00:00Z") == ["2026-12-06T11:00:00Z"])
        #expect(try next("@weekly", after: "2026-12-06T10:00:00Z") == ["2026-12-13T00:00:00Z"])
        #expect(try next("@monthly", after: "2026-12-06T10:00:00Z") == ["2027-01-01T00:00:00Z"])
        #expect(try next("@yearly", after: "2026-12-06T10:00:00Z") == ["2027-01-01T00:00:00Z"])
        #expect(try next("0 0 29 2 *", after: "2026-03-01T00:00:00Z") == ["2028-02-29T00:00:00Z"])
        // Both restricted: the 13th or a Friday, whichever comes first.
        #expect(
            try next("0 0 13 * fri", after: "2026-12-06T00:00:00Z", count: 2)
                == ["2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"])
        // A restricted day of month with `*` for the day of week: the 31st only.
        #expect(
            try next("0 0 31 * *", after: "2026-12-06T00:00:00Z", count: 2)
                == ["2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"])
    }

    @Test("daylight saving in Europe/Berlin: a skipped time comes due after the jump, a repeated one once")
    func daylightSaving() throws {
        // 29 March 2026: 02:00 CET becomes 03:00 CEST. 02:30 does not exist: it comes due at 03:30 CEST (01:30Z).
        #expect(
            try next("30 2 * * *", after: "2026-03-28T12:00:00Z", in: Self.berlin, count: 2)
                == ["2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"])
        // Every half hour across the jump: 01:30 CET, then 03:00 and 03:30 CEST (02:00 and 02:30 fall on them).
        #expect(
            try next("0,30 * * * *", after: "2026-03-29T00:15:00Z", in: Self.berlin, count: 3)
                == ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"])
        // 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice and comes due once, the first time.
        #expect(
            try next("30 2 * * *", after: "2026-10-24T12:00:00Z", in: Self.berlin, count: 2)
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        // Hourly across it: 01:00 CEST, 02:00 CEST, then 03:00 CET (the second 02:00 is the same wall time).
        #expect(
            try next("0 * * * *", after: "2026-10-24T22:30:00Z", in: Self.berlin, count: 3)
                == ["2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"])
    }

    @Test("round names come from the tick, the same whatever the host's clock says")
    func roundNames() throws {
        let schedule = try CronSchedule("0 8 * * *", timeZone: Self.berlin)
        let tick = try #require(schedule.nextTick(after: date("2026-12-06T00:00:00Z")))
        #expect(schedule.roundName(of: tick) == "2026-12-06T07:00:00Z")
        #expect(schedule.tick(ofRound: "2026-12-06T07:00:00Z") == tick)
        // Hosts 30 s apart find the same tick after their own "now" near it.
        let early = try #require(schedule.nextTick(after: tick.addingTimeInterval(-30)))
        let late = try #require(schedule.nextTick(after: tick.addingTimeInterval(-0.5)))
        #expect(early == tick && late == tick)
    }

    @Test("bad schedules are refused naming the field and the problem")
    func badSchedules() {
        let cases: [(String, String)] = [
            ("* * * *", "has 4"), ("61 * * * *", "minute field"), ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of month field"), ("* * * 13 *", "month field"), ("* * * * 8", "day of week field"),
            ("*/0 * * * *", "step"), ("5-1 * * * *", "runs backwards"), ("* * * foo *", "not a number or a name"),
            ("@reboot", "unknown schedule"), ("0 0 30 2 *", "never comes due"), (",5 * * * *", "empty item"),
        ]
        for (expression, problem) in cases {
            #expect(
                performing: { try CronSchedule(expression) },
                throws: { error in
                    (error as? BatonError)?.code == .invalidArgument
                        && (error as? BatonError)?.message.contains(problem) == true
                })
        }
    }
}
