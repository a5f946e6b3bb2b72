import Foundation
import Synchronization
import Testing

@testable import baton

/// Runs the built `baton` executable as a user would.
@Suite("baton: the executable")
struct CommandLineTests {
    struct Outcome {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    /// The `baton` executable next to the test bundle (both live in the build directory).
    static func executable() throws -> URL {
        var directory = try #require(Bundle.main.executableURL).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("baton")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        Issue.record("no baton executable beside the tests; build it with swift build --build-tests")
        throw CancellationError()
    }

    /// Runs `baton` with `arguments` in a fresh temporary directory, without the caller's `BATON_STORE`.
    func baton(_ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("baton-cli-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var processEnvironment = ProcessInfo.processInfo.environment
        processEnvironment["BATON_STORE"] = nil
        processEnvironment.merge(environment) { _, new in new }
        process.environment = processEnvironment
        // Files, not pipes: a keeper that another test of this process forks meanwhile inherits the descriptors
        // open here that are not close-on-exec, and a pipe's reader would wait for that keeper's end too.
        let outputFile = directory.appendingPathComponent("stdout")
        let errorFile = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: outputFile)
        let errors = try FileHandle(forWritingTo: errorFile)
        defer {
            try? output.close()
            try? errors.close()
        }
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try ChildProcess.forkLock.withLock { _ in try process.run() }
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus,
            standardOutput: (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
        )
    }

    @Test("elect on a fresh store prints won and exits 0")
    func electWins() throws {
        let memory = try baton(["elect", "nightly", "2026-11-23", "--candidate", "host-a", "--store", "memory:"])
        #expect(memory.status == 0)
        #expect(memory.standardOutput == "won\n")
        #expect(memory.standardError == "")

        let sqlite = try baton([
            "--store", "sqlite:elections.db", "elect", "nightly", "2026-11-23", "--retention", "2h",
        ])
        #expect(sqlite.status == 0, "\(sqlite.standardError)")
        #expect(sqlite.standardOutput == "won\n")
    }

    @Test("the store comes from BATON_STORE when --store is not given")
    func storeFromEnvironment() throws {
        let outcome = try baton(["leader", "k"], environment: ["BATON_STORE": "mysql://root:sekret@h"])
        #expect(outcome.status == 2)
        #expect(outcome.standardError.hasPrefix("baton: --store: unknown store URL scheme \"mysql\""))
        #expect(!outcome.standardError.contains("sekret"))
    }

    @Test("leader with nobody holding the key prints no leader and exits 1")
    func noLeader() throws {
        for extra in [[], ["--json"]] {
            let outcome = try baton(["leader", "jobs/cleaner", "--store", "memory:"] + extra)
            #expect(outcome.status == 1)
            #expect(outcome.standardOutput == "no leader\n")
        }
    }

    @Test("complete by a candidate that did not win exits 1 with a clear message")
    func completeNotWinner() throws {
        let outcome = try baton(["complete", "nightly", "2026-11-23", "--candidate", "host-b", "--store", "memory:"])
        #expect(outcome.status == 1)
        #expect(outcome.standardOutput == "")
        #expect(outcome.standardError == "baton: host-b did not win nightly/2026-11-23\n")
    }

    @Test("invalid arguments exit 2 with baton: and a message on standard error")
    func invalidArguments() throws {
        let duration = try baton(["elect", "s", "r", "--retention", "7x", "--store", "memory:"])
        #expect(duration.status == 2)
        #expect(duration.standardError.hasPrefix("baton: --retention: invalid duration \"7x\""))

        let name = try baton(["leader", String(repeating: "k", count: 300), "--store", "memory:"])
        #expect(name.status == 2)
        #expect(name.standardError.hasPrefix("baton: key is 300 bytes long"))

        // Redis store: nothing listens on port 1, so the store is unavailable (3), and the password is not printed.
        let redis = try baton(["leader", "k", "--store", "redis://admin:sekret@127.0.0.1:1"])
        #expect(redis.status == 3)
        #expect(redis.standardError.hasPrefix("baton: the store is unavailable: cannot connect to 127.0.0.1:1"))
        #expect(!redis.standardError.contains("sekret"))

        let port = try baton(["leader", "k", "--store", "redis://admin:sekret@127.0.0.1:99999"])
        #expect(port.status == 2)
        #expect(port.standardError.contains("bad port \"99999\""))
        #expect(!port.standardError.contains("sekret"))
    }

    @Test("usage errors exit as ArgumentParser does")
    func usageErrors() throws {
        let missing = try baton(["elect", "nightly"])
        #expect(missing.status == 64)
        #expect(missing.standardError.contains("Missing expected argument '<round>'"))

        let help = try baton(["--help"])
        #expect(help.status == 0)
        #expect(help.standardOutput.contains("elect"))
        #expect(help.standardOutput.contains("complete"))
        #expect(help.standardOutput.contains("leader"))
        for command in ["run", "watch", "resign", "elect", "complete", "leader", "campaign", "cron"] {
            #expect(help.standardOutput.contains(command))
            let commandHelp = try baton([command, "--help"])
            #expect(commandHelp.status == 0)
            #expect(commandHelp.standardOutput.contains("Example"), "baton \(command) --help has no example")
        }
    }

    @Test("baton cron refuses a bad schedule, zone, policy or command, naming it")
    func cronUsageErrors() throws {
        let store = [
            "--store",
            "sqlite:"
                + FileManager.default.temporaryDirectory.appendingPathComponent(
                    "baton-cli-\(UUID().uuidString).db"
                ).path,
        ]
        let cases: [([String], Int32, String)] = [
            (["cron", "61 * * * *", "--key", "k"] + store + ["--", "true"], 2, "minute field"),
            (["cron", "@daily", "--key", "k", "--tz", "Mars/Olympus"] + store + ["--", "true"], 2, "not a time zone"),
            (["cron", "@daily", "--key", "k", "--overlap", "queue"] + store + ["--", "true"], 64, "skip or wait"),
            (["cron", "@daily", "--key", "k"] + store, 64, "give the command"),
            (["cron", "@daily", "--key", "k", "--ttl", "2s", "--grace", "1s"] + store + ["--", "true"], 2, "--grace"),
        ]
        for (arguments, status, message) in cases {
            let result = try baton(arguments)
            #expect(result.status == status, "\(arguments): \(result.standardError)")
            #expect(result.standardError.contains(message), "\(arguments): \(result.standardError)")
        }
    }

    @Test("rounds over a shared SQLite file")
    func roundsAcrossProcesses() throws {
        let database = FileManager.default.temporaryDirectory.appendingPathComponent(
            "baton-cli-\(UUID().uuidString).db")
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database.path + suffix) }
        }
        let store = ["--store", "sqlite:" + database.path]
        let first = try baton(["elect", "nightly", "2026-11-23", "--candidate", "host-a"] + store)
        #expect(first.status == 0 && first.standardOutput == "won\n")
        let again = try baton(["elect", "nightly", "2026-11-23", "--candidate", "host-a"] + store)
        #expect(again.status == 0 && again.standardOutput == "won\n")
        let other = try baton(["elect", "nightly", "2026-11-23", "--candidate", "host-b"] + store)
        #expect(other.status == 1 && other.standardOutput == "lost: winner is host-a\n")
        let notWinner = try baton(["complete", "nightly", "2026-11-23", "--candidate", "host-b"] + store)
        #expect(notWinner.status == 1 && notWinner.standardError == "baton: host-b did not win nightly/2026-11-23\n")
        let done = try baton(["complete", "nightly", "2026-11-23", "--candidate", "host-a"] + store)
        #expect(done.status == 0 && done.standardOutput == "completed\n")
        let repeated = try baton(["complete", "nightly", "2026-11-23", "--candidate", "host-a"] + store)
        #expect(repeated.status == 0)
        let leader = try baton(["leader", "jobs/cleaner", "--json"] + store)
        #expect(leader.status == 1 && leader.standardOutput == "no leader\n")
    }

    @Test("list shows the lease another process holds, then nothing once it is released, and the rounds")
    func listAcrossProcesses() throws {
        let database = FileManager.default.temporaryDirectory.appendingPathComponent(
            "baton-cli-\(UUID().uuidString).db")
        defer {
            for suffix in ["", "-wal", "-shm", "-notify"] {
                try? FileManager.default.removeItem(atPath: database.path + suffix)
            }
        }
        let store = ["--store", "sqlite:" + database.path]
        let listInside = [try Self.executable().path, "list", "jobs/", "--json"] + store
        let held = try baton(
            ["run", "--key", "jobs/mailer", "--id", "host-a", "--metadata", "http://h:1/"] + store + ["--"] + listInside
        )
        #expect(held.status == 0, "\(held.standardError)")
        let line = try #require(held.standardOutput.split(separator: "\n").first { $0.hasPrefix("{") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let leases = try #require(object["leases"] as? [[String: Any]])
        #expect(leases.count == 1)
        #expect(leases.first?["key"] as? String == "jobs/mailer")
        #expect(leases.first?["holder"] as? String == "host-a")
        #expect(leases.first?["metadata"] as? String == "http://h:1/")
        #expect(object["truncated"] as? Bool == false)

        let after = try baton(["list", "jobs/"] + store)
        #expect(after.status == 0 && after.standardOutput == "no leases held\n", "\(after.standardError)")

        #expect(try baton(["elect", "nightly", "2026-11-23", "--candidate", "host-a"] + store).status == 0)
        #expect(try baton(["complete", "nightly", "2026-11-23", "--candidate", "host-a"] + store).status == 0)
        #expect(try baton(["elect", "nightly", "2026-11-24", "--candidate", "host-b"] + store).status == 0)
        let rounds = try baton(["list", "--rounds", "nightly"] + store)
        #expect(rounds.status == 0, "\(rounds.standardError)")
        #expect(
            rounds.standardOutput
                == "ROUND       WINNER  COMPLETED BY\n2026-11-24  host-b  -\n2026-11-23  host-a  host-a\n")
        let limited = try baton(["list", "--rounds", "nightly", "--limit", "1"] + store)
        #expect(limited.standardOutput.split(separator: "\n").count == 2)
        #expect(limited.standardError.contains("more rounds"))

        let bad = try baton(["list", "jobs/\u{7}"] + store)
        #expect(bad.status == 2 && bad.standardError.hasPrefix("baton: prefix "))
        let badLimit = try baton(["list", "--limit", "0"] + store)
        #expect(badLimit.status == 2 && badLimit.standardError.contains("--limit must be 1–10000"))
    }
}
