/// Parses a duration written as a whole number followed by a unit: `250ms`, `10s`, `5m`, `2h`, `7d`.
///
/// The units are `ms` (milliseconds), `s` (seconds), `m` (minutes), `h` (hours) and `d` (days of 24 hours).
/// The number is a non-negative decimal integer; underscores, signs, fractions, spaces and upper-case units are
/// not accepted. Zero is accepted here: whether a zero duration makes sense is for the caller to check (for
/// example with the check of ttls the stores apply).
///
/// - Throws: ``BatonError`` `invalidArgument` saying what is wrong with `text` and which forms are accepted.
public func parseBatonDuration(_ text: String) throws(BatonError) -> Duration {
    let examples = "use a whole number and a unit: ms, s, m, h or d (e.g. 250ms, 10s, 5m, 2h, 7d)"
    let shown = BatonValidation.preview(text)
    let digits = text.prefix { $0.isASCII && $0.isWholeNumber }
    let unit = text.dropFirst(digits.count)
    if text.isEmpty {
        throw .invalidArgument("empty duration; \(examples)")
    }
    if digits.isEmpty {
        throw .invalidArgument("invalid duration \(shown): it does not start with a number; \(examples)")
    }
    let secondsPerUnit: Int64
    switch unit {
    case "ms": secondsPerUnit = 0
    case "s": secondsPerUnit = 1
    case "m": secondsPerUnit = 60
    case "h": secondsPerUnit = 3600
    case "d": secondsPerUnit = 86_400
    case "": throw .invalidArgument("invalid duration \(shown): the unit is missing; \(examples)")
    default:
        let shownUnit = BatonValidation.preview(String(unit))
        throw .invalidArgument("invalid duration \(shown): unknown unit \(shownUnit); \(examples)")
    }
    // At most a million days, so that every accepted value fits a Duration and its milliseconds fit an Int64.
    let limit: Int64 = secondsPerUnit == 0 ? 86_400_000_000_000 : 86_400_000_000 / secondsPerUnit
    guard let amount = Int64(digits), amount <= limit else {
        throw .invalidArgument("invalid duration \(shown): too large; the limit is a million days")
    }
    return secondsPerUnit == 0 ? .milliseconds(amount) : .seconds(amount * secondsPerUnit)
}
