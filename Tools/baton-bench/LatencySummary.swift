import ArgumentParser
import Foundation
import Histogram

/// Latency percentiles through an HDR histogram (microsecond resolution, three significant digits, up to one
/// hour), the one place every scenario of scripts/bench computes its percentiles.
struct LatencySummary {
    private var histogram = Histogram<UInt64>(
        highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)

    var count: Int { Int(histogram.totalCount) }

    mutating func record(_ duration: Duration) {
        record(milliseconds: duration.milliseconds)
    }

    mutating func record(milliseconds: Double) {
        let microseconds = UInt64(max(1, (milliseconds * 1000).rounded()))
        _ = histogram.record(min(microseconds, histogram.highestTrackableValue))
    }

    /// `median_ms`, `p90_ms`, `p99_ms`, `min_ms`, `max_ms` and `rounds`, in milliseconds rounded to 10 µs.
    var fields: [String: Any] {
        func ms(_ microseconds: UInt64) -> Double { (Double(microseconds) / 10).rounded() / 100 }
        guard count > 0 else { return ["rounds": 0] }
        return [
            "rounds": count,
            "median_ms": ms(histogram.valueAtPercentile(50)),
            "p90_ms": ms(histogram.valueAtPercentile(90)),
            "p99_ms": ms(histogram.valueAtPercentile(99)),
            "min_ms": ms(histogram.min),
            "max_ms": ms(histogram.max),
        ]
    }
}

extension Duration {
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// Prints one JSON object on a line of its own, keys sorted so runs compare line by line.
func emit(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// `baton-bench summary`: reads samples in milliseconds, one per line, from standard input and prints their
/// percentiles as JSON (for the scenarios measured by Python drivers around real processes).
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Percentiles of millisecond samples read from standard input."
    )

    func run() throws {
        var summary = LatencySummary()
        var lineNumber = 0
        while let line = readLine() {
            lineNumber += 1
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let value = Double(text), value >= 0, value.isFinite else {
                throw ValidationError("line \(lineNumber) of standard input is not a number of milliseconds: \(text)")
            }
            summary.record(milliseconds: value)
        }
        emit(summary.fields)
    }
}

extension LatencySummary {
    mutating func merge(_ other: LatencySummary) { histogram.add(other.histogram) }
}
