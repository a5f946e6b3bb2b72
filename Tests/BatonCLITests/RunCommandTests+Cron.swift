import Foundation
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton cron`: the same every-minute line on three hosts (processes) over Redis.
extension RunCommandTests {
    /// One line of `$DIR/runs`: a command of `baton cron` starting or ending a round.
    struct CronRun: Hashable {
        var event: String
        var round: String
        var holder: String
        var token: Int64
        /// The command's `TRACEPARENT` (start lines).
        var trace: String?
    }

    static func cronRuns(_ scratch: Scratch) -> [CronRun] {
        scratch.read("runs").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 4 || fields.count == 5, let token = Int64(fields[3]) else { return nil }
            return CronRun(
                event: String(fields[0]), round: String(fields[1]), holder: String(fields[2]), token: token,
                trace: fields.count == 5 ? String(fields[4]) : nil)
        }
    }

    @Test("baton cron on Redis: 3 hosts run each every-minute tick once; a host killed mid-run is replaced")
    func cronOnRedis() throws {
        guard let redis = ProcessInfo.processInfo.environment["BATON_TEST_REDIS_URL"] else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "CI runs this test on a Redis server")
            return
        }
        let scratch = try Scratch()
        let key = "cron-\(UUID().uuidString.prefix(8))"
        // Each run: its start, its pid, six seconds of work, its end.
        let command = [
            "sh", "-c",
            "echo \"start $BATON_ROUND $BATON_HOLDER $BATON_TOKEN $TRACEPARENT\" >> \"$DIR/runs\"; "
                + "echo $$ > \"$DIR/$BATON_HOLDER.pid\"; "
                + "sleep 6; echo \"end $BATON_ROUND $BATON_HOLDER $BATON_TOKEN\" >> \"$DIR/runs\"",
        ]
        var hosts: [String: Baton] = [:]
        for name in ["h0", "h1", "h2"] {
            hosts[name] = try Baton(
                [
                    "cron", "* * * * *", "--key", key, "--store", redis, "--id", name, "--ttl", "3s", "--grace",
                    "500ms",
                    "--",
                ] + command, in: scratch, name: name)
        }
        func errors() -> String { hosts.map { "\($0.key): \($0.value.standardError)" }.joined(separator: "\n") }

        // The first tick starts on one host: it is killed (SIGKILL) in the middle of the run.
        #expect(Self.waitUntil(.seconds(75)) { Self.cronRuns(scratch).contains { $0.event == "start" } }, "\(errors())")
        let first = try #require(Self.cronRuns(scratch).first { $0.event == "start" })
        let killed = try #require(hosts[first.holder])
        #expect(Self.waitUntil(.seconds(5)) { scratch.exists("\(first.holder).pid") })
        let orphan = try scratch.pid("\(first.holder).pid")
        killed.signal(SIGKILL)
        _ = killed.exit()

        // Its command is stopped by its keeper before the lease passes; another host runs the round again, with a
        // larger token, once the lease has expired.
        #expect(
            Self.waitUntil(.seconds(30)) {
                Self.cronRuns(scratch).contains {
                    $0.event == "end" && $0.round == first.round && $0.holder != first.holder && $0.token > first.token
                }
            }, "\(errors())\n\(scratch.read("runs"))")
        #expect(!Self.isAlive(orphan), "the killed host's command outlived it")

        // The next tick runs once, on one of the two hosts left, and is recorded (the hosts are stopped only then:
        // a host stopped before it recorded the run would leave the round to be run again).
        #expect(
            Self.waitUntil(.seconds(75)) {
                guard let next = Self.cronRuns(scratch).first(where: { $0.event == "end" && $0.round != first.round })
                else { return false }
                return hosts.values.contains { $0.standardError.contains("round \(next.round): ran with token") }
            }, "\(errors())\n\(scratch.read("runs"))")
        for (name, host) in hosts where name != first.holder {
            host.signal(SIGTERM)
            #expect(host.exit() == 128 + SIGTERM, "\(host.standardError)")
        }
        let runs = Self.cronRuns(scratch)
        let starts = runs.filter { $0.event == "start" }
        #expect(starts.filter { $0.round == first.round }.count == 2, "\(runs)")
        #expect(!runs.contains { $0.event == "end" && $0.holder == first.holder }, "the killed host's run ended")
        let later = Set(starts.map(\.round)).subtracting([first.round])
        #expect(later.count == 1, "\(runs)")
        for round in later {
            #expect(starts.filter { $0.round == round }.count == 1, "\(round) ran twice: \(runs)\n\(errors())")
        }
        #expect(starts.map(\.token) == starts.map(\.token).sorted(), "tokens: \(starts)")
        // Each run is a trace of its own (the hosts were started in none).
        let traces = starts.compactMap { $0.trace.flatMap { TraceParent(header: $0) } }
        #expect(traces.count == starts.count, "TRACEPARENT of each run: \(starts.map(\.trace))")
        #expect(Set(traces.map(\.traceID)).count == traces.count, "\(starts.map(\.trace))")
        // The hosts say what they recorded.
        let survivors = hosts.filter { $0.key != first.holder }.map(\.value.standardError).joined()
        #expect(survivors.contains("round \(first.round): ran with token"))
    }
}
