import BatonChaos
import Foundation
import Testing

/// Hand-made record logs, each breaking one property, so the checker is shown able to fail.
@Suite("chaos property checker")
struct ChaosCheckerTests {
    /// Milliseconds to nanoseconds, for readable logs.
    static func ms(_ value: Int64) -> Int64 { value * 1_000_000 }

    /// Parses a log written with times in milliseconds (`<ms> <kind> ...`).
    static func records(_ text: String) throws -> [ChaosRecord] {
        try text.split(separator: "\n").map { line in
            var fields = line.split(separator: " ").map(String.init)
            fields[0] = String(ms(Int64(fields[0])!))
            return try ChaosRecord(line: Substring(fields.joined(separator: " ")))
        }
    }

    static let checker = ChaosChecker(configuration: .init(staleWindow: ms(500), livenessBound: ms(1000)))

    static func verdicts(_ text: String) throws -> (ChaosChecker.Report, [String: Bool]) {
        let report = checker.check(try records(text))
        return (report, Dictionary(uniqueKeysWithValues: report.checks.map { ($0.name, $0.passed) }))
    }

    /// Two clean terms: a graceful handover and a crash failover.
    static let clean = """
        0 start 10 a 101 100
        50 tick 10 a 101 100
        100 fault term 100 10
        120 end 10 a 101 100
        130 start 11 b 201 200
        180 tick 11 b 201 200
        200 fault kill 200 11
        900 start 12 c 300 300
        950 tick 12 c 300 300
        1000 finish
        """

    @Test("a clean run passes every property and measures handover and failover")
    func cleanRun() throws {
        let (report, verdicts) = try Self.verdicts(Self.clean)
        #expect(verdicts.values.allSatisfy { $0 })
        #expect(report.checks.count == 4)
        #expect(report.passed == 4 && report.failed == 0)
        #expect(report.faults == 2)
        #expect(report.faultKinds == ["term": 1, "kill": 1])
        #expect(report.terms == 3)
        #expect(report.overlaps == 0)
        #expect(report.handoverMedian == 30)
        #expect(report.failoverMedian == 700)
    }

    @Test("a token written by two processes is a duplicated token")
    func duplicatedToken() throws {
        let (report, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            60 end 10 a 101 100
            70 start 10 b 201 200
            120 tick 10 b 201 200
            130 finish
            """)
        #expect(verdicts["one holder per token"] == false)
        #expect(report.duplicatedTokens == 1)
        #expect(report.failed >= 1)
    }

    @Test("one campaigner may run several commands in one term (a renew of its own term)")
    func sameCampaignerNewCommand() throws {
        let (_, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            50 end 10 a 101 100
            300 start 10 a 102 100
            350 tick 10 a 102 100
            360 finish
            """)
        #expect(verdicts["one holder per token"] == true)
    }

    @Test("a term that starts later with a smaller token breaks rising tokens")
    func fallingToken() throws {
        let (_, verdicts) = try Self.verdicts(
            """
            0 start 20 a 101 100
            50 end 20 a 101 100
            100 start 19 b 201 200
            150 tick 19 b 201 200
            160 finish
            """)
        #expect(verdicts["tokens rise with time"] == false)
        #expect(verdicts["no overlapping terms"] == true)
    }

    @Test("two terms working at once overlap")
    func overlap() throws {
        let (report, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            100 tick 10 a 101 100
            90 start 11 b 201 200
            150 tick 11 b 201 200
            160 finish
            """)
        #expect(verdicts["no overlapping terms"] == false)
        #expect(report.overlaps == 1)
        #expect(report.overlapsByKind == ["none": 1])
    }

    @Test("an overlap is charged to the fault last aimed at the earlier term (a body working on after a resign)")
    func overlapCause() throws {
        let (report, verdicts) = try Self.verdicts(
            """
            0 start 10 a 100 100
            20 fault kill 100 9
            40 fault resign-busy 100 10
            50 tick 10 a 100 100
            60 start 11 b 200 200
            100 tick 10 a 100 100
            150 tick 11 b 200 200
            160 finish
            """)
        #expect(verdicts["no overlapping terms"] == false)
        #expect(report.overlapsByKind == ["resign-busy": 1])
    }

    @Test("a paused holder's records right after the resume are fenced when its token is the smaller")
    func pausedHolderFenced() throws {
        let text = """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            60 pause 100
            60 fault stop 100 10
            400 start 11 b 201 200
            450 tick 11 b 201 200
            700 resume 100
            710 tick 10 a 101 100
            720 end 10 a 101 100
            750 tick 11 b 201 200
            800 finish
            """
        let (report, verdicts) = try Self.verdicts(text)
        #expect(verdicts.values.allSatisfy { $0 })
        #expect(report.fencedStaleRecords == 2)
        #expect(report.overlaps == 0)
        #expect(report.failoverMedian == 340)
        #expect(report.longestStaleWork == 20)
    }

    @Test("a writer silent for longer than the pause gap was paused: its late records must be fenced")
    func involuntaryPause() throws {
        let checker = ChaosChecker(
            configuration: .init(staleWindow: Self.ms(500), livenessBound: Self.ms(1000), pauseGap: Self.ms(200)))
        let text = """
            0 start 9 a 101 100
            600 tick 9 a 101 100
            620 tick 9 a 101 100
            300 start 10 b 201 200
            450 tick 10 b 201 200
            600 tick 10 b 201 200
            650 tick 10 b 201 200
            700 finish
            """
        let fenced = checker.check(try Self.records(text))
        #expect(fenced.failed == 0)
        #expect(fenced.involuntaryPauses == 1)
        #expect(fenced.fencedStaleRecords == 2)
        // The same log with the larger token on the silent writer is an overlap.
        let larger = checker.check(try Self.records(text.replacingOccurrences(of: " 9 a", with: " 11 a")))
        #expect(larger.checks.first { $0.name == "no overlapping terms" }?.passed == false)
        // Without the gap (a writer that kept running), the same overlap is not excused.
        let steady = checker.check(
            try Self.records(
                """
                0 start 9 a 101 100
                150 tick 9 a 101 100
                300 tick 9 a 101 100
                450 tick 9 a 101 100
                600 tick 9 a 101 100
                300 start 10 b 201 200
                450 tick 10 b 201 200
                600 tick 10 b 201 200
                650 tick 10 b 201 200
                700 finish
                """))
        #expect(steady.involuntaryPauses == 0)
        #expect(steady.checks.first { $0.name == "no overlapping terms" }?.passed == false)
    }

    @Test("a paused holder with the larger token writing during another term is an overlap")
    func pausedHolderNotFenced() throws {
        let (report, verdicts) = try Self.verdicts(
            """
            0 start 12 a 101 100
            50 tick 12 a 101 100
            60 pause 100
            400 start 11 b 201 200
            700 resume 100
            710 tick 12 a 101 100
            750 tick 11 b 201 200
            800 finish
            """)
        #expect(verdicts["no overlapping terms"] == false)
        #expect(report.overlaps >= 1)
    }

    @Test("a paused holder that keeps working past the stale window overlaps")
    func pausedHolderPastWindow() throws {
        let (_, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            60 pause 100
            400 start 11 b 201 200
            700 resume 100
            1300 tick 10 a 101 100
            1350 tick 11 b 201 200
            1400 finish
            """)
        #expect(verdicts["no overlapping terms"] == false)
    }

    @Test("after a store lost its data, the old leader's records until it notices are fenced by rising tokens")
    func dataLossFenced() throws {
        let (report, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            60 fault wipe - -
            100 start 11 b 201 200
            110 tick 10 a 101 100
            150 tick 11 b 201 200
            200 finish
            """)
        #expect(verdicts.values.allSatisfy { $0 })
        #expect(report.fencedStaleRecords == 1)
        #expect(report.fencedAfterDataLoss == 1)
        #expect(report.longestStaleWork == 50)
    }

    @Test("after a store lost its data, a new term with a smaller token is caught")
    func dataLossTokenFell() throws {
        let (report, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            60 fault wipe - -
            100 start 3 b 201 200
            110 tick 10 a 101 100
            150 tick 3 b 201 200
            200 finish
            """)
        #expect(verdicts["no overlapping terms"] == false)
        #expect(verdicts["tokens rise with time"] == false)
        #expect(report.overlaps == 1)
    }

    @Test("a gap without a leader longer than the bound means elections stopped")
    func stuckElection() throws {
        let (_, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            60 fault kill 100 10
            1500 start 11 b 201 200
            1550 finish
            """)
        #expect(verdicts["elections continue"] == false)
    }

    @Test("a fault kind with a tighter bound needs its successor sooner (a leader within 3 ttl after a drop)")
    func tighterBound() throws {
        let log = { (kind: String) in
            """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            60 fault \(kind) 100 10
            760 start 11 b 201 200
            800 tick 11 b 201 200
            850 finish
            """
        }
        let checker = ChaosChecker(
            configuration: .init(
                staleWindow: Self.ms(500), livenessBound: Self.ms(1000), faultBounds: ["drop-waiters": Self.ms(500)]))
        let late = checker.check(try Self.records(log("drop-waiters")))
        #expect(late.checks.first { $0.name == "elections continue" }?.passed == false)
        #expect(late.failovers == 0)
        let inTime = checker.check(try Self.records(log("kill")))
        #expect(inTime.failed == 0)
        #expect(inTime.failoverMedian == 700)
    }

    @Test("a run whose last leader died and none followed before the end is stuck")
    func stuckAtEnd() throws {
        let (_, verdicts) = try Self.verdicts(
            """
            0 start 10 a 101 100
            50 tick 10 a 101 100
            3000 finish
            """)
        #expect(verdicts["elections continue"] == false)
    }

    @Test("a run without any leader fails")
    func noLeader() throws {
        let (_, verdicts) = try Self.verdicts("0 fault kill - -\n100 finish")
        #expect(verdicts["elections continue"] == false)
    }

    @Test("malformed lines are refused with the reason")
    func malformed() {
        #expect(throws: ChaosRecord.ParseError.self) { try ChaosRecord(line: "12 start 10 a 101") }
        #expect(throws: ChaosRecord.ParseError.self) { try ChaosRecord(line: "x tick 10 a 1 1") }
        #expect(throws: ChaosRecord.ParseError.self) { try ChaosRecord(line: "12 jump 10 a 1 1") }
    }
}
