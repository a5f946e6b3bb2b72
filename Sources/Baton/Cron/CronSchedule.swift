import Foundation

/// A cron schedule: when a job's rounds come due, in a stated time zone.
///
/// Five fields — minute (0–59), hour (0–23), day of month (1–31), month (1–12 or `jan`–`dec`), day of week (0–7,
/// 0 and 7 being Sunday, or `sun`–`sat`) — or six, with a first field of seconds (0–59). Each field is `*`, a value,
/// a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to the field's end), or a list of these separated by
/// commas. `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly` stand for their
/// usual five fields. As in Vixie cron, when both the day of month and the day of week are restricted (neither
/// starts with `*`), a day matches if either does.
///
/// Ticks are wall-clock times in ``timeZone`` (UTC by default). Daylight-saving rules:
/// - a wall time that does not exist (skipped when clocks go forward) comes due at the same time after the jump,
///   shifted by its length (with Europe/Berlin, 02:30 on the last Sunday of March comes due at 03:30);
/// - a wall time that exists twice (when clocks go back) comes due once, at its first occurrence;
/// - two ticks that fall on one instant are one tick.
///
/// Every tick has a round name derived from the schedule alone (``roundName(of:)``: its instant in UTC), never from
/// a host's clock at the time it runs, so hosts whose clocks disagree still name one tick's round alike.
public struct CronSchedule: Sendable, Hashable, CustomStringConvertible {
    /// The schedule as written.
    public let expression: String
    /// The time zone its wall-clock times are read in.
    public let timeZone: TimeZone

    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    /// Days of the week, 0 = Sunday.
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    /// Parses `expression` in `timeZone`.
    /// - Throws: ``BatonError`` `invalidArgument` naming the field and what is wrong with it.
    public init(_ expression: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) throws {
        self.expression = expression
        self.timeZone = timeZone
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        let macros = [
            "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
            "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
        ]
        let expanded: String
        if trimmed.hasPrefix("@") {
            guard let fields = macros[trimmed.lowercased()] else {
                throw BatonError.invalidArgument(
                    "unknown schedule \(trimmed.debugDescription): the macros are @yearly, @annually, @monthly, "
                        + "@weekly, @daily, @midnight and @hourly")
            }
            expanded = fields
        } else {
            expanded = trimmed
        }
        var fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw BatonError.invalidArgument(
                "a schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first); "
                    + "\(expression.debugDescription) has \(fields.count)")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.field(fields[0], "seconds", 0...59)
        minutes = try Self.field(fields[1], "minute", 0...59)
        hours = try Self.field(fields[2], "hour", 0...23)
        days = try Self.field(fields[3], "day of month", 1...31)
        months = try Self.field(fields[4], "month", 1...12, names: Self.monthNames, firstName: 1)
        let weekdays = try Self.field(fields[5], "day of week", 0...7, names: Self.dayNames, firstName: 0)
        self.weekdays = Set(weekdays.map { $0 % 7 })
        daysRestricted = !fields[3].hasPrefix("*")
        weekdaysRestricted = !fields[5].hasPrefix("*")
        // A schedule that never comes due (30 February) is refused now rather than searched for forever.
        if daysRestricted && !weekdaysRestricted,
            !months.contains(where: { month in days.contains { $0 <= Self.longestMonth(month) } })
        {
            throw BatonError.invalidArgument("the schedule \(expression.debugDescription) never comes due")
        }
    }

    public var description: String {
        "\(expression) (\(timeZone.identifier))"
    }

    // MARK: Ticks

    /// The first tick strictly after `date`, or nil if there is none within the next eight years.
    public func nextTick(after date: Date) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        // Wall-clock fields of the next whole second after `date`.
        let start = Date(timeIntervalSinceReferenceDate: (date.timeIntervalSinceReferenceDate + 1).rounded(.down))
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: start)
        var wall = Wall(
            year: c.year!, month: c.month!, day: c.day!, hour: c.hour!, minute: c.minute!, second: c.second!)
        let lastYear = wall.year + 8
        while wall.year <= lastYear {
            guard months.contains(wall.month) else {
                wall.nextMonth()
                continue
            }
            guard matchesDay(wall) else {
                wall.nextDay()
                continue
            }
            guard hours.contains(wall.hour) else {
                wall.nextHour()
                continue
            }
            guard minutes.contains(wall.minute) else {
                wall.nextMinute()
                continue
            }
            guard seconds.contains(wall.second) else {
                wall.nextSecond()
                continue
            }
            let components = DateComponents(
                year: wall.year, month: wall.month, day: wall.day, hour: wall.hour, minute: wall.minute,
                second: wall.second)
            // A wall time skipped by a jump forward maps past the jump; one that exists twice maps to its first
            // occurrence, which may be before `date` (then its second occurrence is not a tick).
            if let instant = calendar.date(from: components), instant > date { return instant }
            wall.nextSecond()
        }
        return nil
    }

    /// The ticks after `start` up to and including `end`, oldest first, at most `limit` of them (the most recent
    /// ones if there are more).
    public func ticks(after start: Date, through end: Date, limit: Int = 100_000) -> [Date] {
        var ticks: [Date] = []
        var cursor = start
        while let tick = nextTick(after: cursor), tick <= end {
            ticks.append(tick)
            cursor = tick
        }
        return ticks.count > limit ? Array(ticks.suffix(limit)) : ticks
    }

    /// The round name of `tick`: its instant in UTC, `2026-12-06T08:00:00Z`. The same on every host whatever its
    /// clock says, as it comes from the schedule.
    public func roundName(of tick: Date) -> String {
        tick.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }

    /// The tick a round name stands for, if it is one.
    public func tick(ofRound name: String) -> Date? {
        try? Date(name, strategy: Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
    }

    private func matchesDay(_ wall: Wall) -> Bool {
        guard wall.day <= Wall.daysIn(month: wall.month, year: wall.year) else { return false }
        let dayMatches = days.contains(wall.day)
        let weekdayMatches = weekdays.contains(wall.weekday)
        if daysRestricted && weekdaysRestricted { return dayMatches || weekdayMatches }
        return dayMatches && weekdayMatches
    }

    // MARK: Parsing

    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    static func longestMonth(_ month: Int) -> Int {
        month == 2 ? 29 : Wall.daysIn(month: month, year: 2000)
    }

    private static func field(
        _ text: String,
        _ name: String,
        _ range: ClosedRange<Int>,
        names: [String] = [],
        firstName: Int = 0
    ) throws -> Set<Int> {
        func refuse(_ problem: String) -> BatonError {
            .invalidArgument("the schedule's \(name) field \(text.debugDescription): \(problem)")
        }
        func value(_ token: Substring) throws -> Int {
            if let number = Int(token) {
                guard range.contains(number) else {
                    throw refuse("\(number) is out of range \(range.lowerBound)–\(range.upperBound)")
                }
                return number
            }
            if let index = names.firstIndex(of: token.lowercased()) { return index + firstName }
            throw refuse("\(String(token).debugDescription) is not a number\(names.isEmpty ? "" : " or a name")")
        }
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw refuse("an empty item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw refuse("more than one '/' in \(String(item).debugDescription)") }
            var step = 1
            if parts.count == 2 {
                guard let parsed = Int(parts[1]), parsed > 0 else {
                    throw refuse("the step \(String(parts[1]).debugDescription) is not a positive number")
                }
                step = parsed
            }
            let base = parts[0]
            let low: Int
            let high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw refuse("the range \(base) runs backwards") }
            } else {
                low = try value(base)
                high = parts.count == 2 ? range.upperBound : low
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }

    // MARK: Wall-clock arithmetic

    /// A wall-clock time in the schedule's zone, stepped field by field (no time zone involved).
    struct Wall {
        var year: Int
        var month: Int
        var day: Int
        var hour: Int
        var minute: Int
        var second: Int

        static func daysIn(month: Int, year: Int) -> Int {
            switch month {
            case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
            case 4, 6, 9, 11: 30
            default: 31
            }
        }

        /// 0 = Sunday (Sakamoto's method).
        var weekday: Int {
            let offsets = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4]
            let y = month < 3 ? year - 1 : year
            return (y + y / 4 - y / 100 + y / 400 + offsets[month - 1] + day) % 7
        }

        mutating func nextMonth() {
            (day, hour, minute, second) = (1, 0, 0, 0)
            if month == 12 {
                month = 1
                year += 1
            } else {
                month += 1
            }
        }

        mutating func nextDay() {
            (hour, minute, second) = (0, 0, 0)
            if day >= Self.daysIn(month: month, year: year) {
                nextMonth()
            } else {
                day += 1
            }
        }

        mutating func nextHour() {
            (minute, second) = (0, 0)
            if hour == 23 { nextDay() } else { hour += 1 }
        }

        mutating func nextMinute() {
            second = 0
            if minute == 59 { nextHour() } else { minute += 1 }
        }

        mutating func nextSecond() {
            if second == 59 { nextMinute() } else { second += 1 }
        }
    }
}
