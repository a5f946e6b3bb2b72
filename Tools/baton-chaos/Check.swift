import ArgumentParser
import BatonChaos
import Foundation

extension BatonChaosCommand {
    /// Reads the records of a run and judges them (see ``ChaosChecker``).
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the records of a chaos run: one holder per token, rising tokens, no overlaps, "
                + "elections continuing; print the figures and `N passed, N failed`.",
            discussion: "Exits 1 when a property is violated, 2 when a record cannot be read.")

        @Option(help: ArgumentHelp("The name printed with the figures (the store).", valueName: "name"))
        var label: String = "run"

        @Option(
            name: .customLong("stale-window"),
            help: ArgumentHelp(
                "Milliseconds after a resume in which a paused holder's records are stale.", valueName: "ms"))
        var staleWindow: Int = 2000

        @Option(
            help: ArgumentHelp(
                "The longest time without a leader that counts as elections continuing.", valueName: "ms"))
        var bound: Int = 10000

        @Option(
            name: .customLong("pause-gap"),
            help: ArgumentHelp(
                "Records of one writer and term further apart than this show an involuntary pause.", valueName: "ms"))
        var pauseGap: Int = 500

        @Option(
            name: .customLong("fault-bound"),
            help: ArgumentHelp(
                "A tighter bound for the next term after a fault of one kind, e.g. drop-waiters=3000 (repeatable).",
                valueName: "kind=ms"))
        var faultBounds: [String] = []

        @Option(help: ArgumentHelp("Append the figures as one tab-separated line to this file.", valueName: "file"))
        var summary: String?

        @Argument(help: ArgumentHelp("Record files, or directories whose *.log files are read.", valueName: "path"))
        var paths: [String]

        func run() throws {
            var bounds: [String: Int64] = [:]
            for bound in faultBounds {
                let parts = bound.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let milliseconds = Int64(parts[1]), milliseconds > 0 else {
                    throw ValidationError("--fault-bound \(bound): expected KIND=MS, e.g. drop-waiters=3000")
                }
                bounds[String(parts[0])] = milliseconds * 1_000_000
            }
            var records: [ChaosRecord] = []
            for path in try files() {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                for line in text.split(separator: "\n") where !line.isEmpty {
                    do {
                        records.append(try ChaosRecord(line: line))
                    } catch {
                        print("baton-chaos check: \(path): \(error)")
                        throw ExitCode(2)
                    }
                }
            }
            let checker = ChaosChecker(
                configuration: .init(
                    staleWindow: Int64(staleWindow) * 1_000_000, livenessBound: Int64(bound) * 1_000_000,
                    pauseGap: Int64(pauseGap) * 1_000_000, faultBounds: bounds))
            let report = checker.check(records)
            let failover = report.failoverMedian.map { String(format: "%.0f ms", $0) } ?? "-"
            let handover = report.handoverMedian.map { String(format: "%.0f ms", $0) } ?? "-"
            print(
                "\(label): faults \(report.faults), terms \(report.terms), overlaps \(report.overlaps), "
                    + "duplicated tokens \(report.duplicatedTokens), fenced stale records \(report.fencedStaleRecords) "
                    + "(\(report.fencedAfterDataLoss) after data loss), "
                    + "failover median \(failover) (\(report.failovers)), handover median \(handover) "
                    + "(\(report.handovers))")
            let kinds = report.faultKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            print(
                String(
                    format: "  longest work of a paused or forgotten leader beside a newer term: %.0f ms",
                    report.longestStaleWork))
            print("  writers silent for over \(pauseGap) ms (injected stops included): \(report.involuntaryPauses)")
            print("  faults by kind: \(kinds.isEmpty ? "none" : kinds.joined(separator: ", "))")
            if !report.overlapsByKind.isEmpty {
                let causes = report.overlapsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                print("  overlaps by the fault before them: \(causes.joined(separator: ", "))")
            }
            for check in report.checks {
                print("  \(check.passed ? "PASS" : "FAIL") \(check.name)")
                for detail in check.details { print("       \(detail)") }
            }
            print("\(report.passed) passed, \(report.failed) failed")
            if let summary {
                let row =
                    [
                        label, "\(report.faults)", "\(report.terms)", "\(report.overlaps)",
                        "\(report.duplicatedTokens)",
                        failover, handover, "\(report.passed)", "\(report.failed)",
                        kinds.isEmpty ? "-" : kinds.joined(separator: ", "),
                        report.overlapsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                            .joined(separator: ", "),
                    ].joined(separator: "\t") + "\n"
                if let handle = FileHandle(forWritingAtPath: summary) {
                    handle.seekToEndOfFile()
                    handle.write(Data(row.utf8))
                    handle.closeFile()
                } else {
                    try row.write(toFile: summary, atomically: false, encoding: .utf8)
                }
            }
            if report.failed > 0 { throw ExitCode(1) }
        }

        private func files() throws -> [String] {
            var files: [String] = []
            for path in paths {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                    throw ValidationError("\(path): no such file or directory")
                }
                if isDirectory.boolValue {
                    let names = try FileManager.default.contentsOfDirectory(atPath: path)
                    files += names.filter { $0.hasSuffix(".log") }.sorted().map { "\(path)/\($0)" }
                } else {
                    files.append(path)
                }
            }
            return files
        }
    }
}
