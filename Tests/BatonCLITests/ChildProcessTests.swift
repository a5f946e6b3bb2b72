import Foundation
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A command prepared ahead of leadership: forked up to its exec, started by the launch, or given up unrun.
@Suite("baton run: prepared commands")
struct ChildProcessTests {
    /// A scratch directory for one test.
    struct Scratch: ~Copyable {
        let directory: URL

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-child-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    }

    /// The command names (`comm`) of the processes in process group `group`, from /proc.
    static func commandNames(inGroup group: pid_t) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> String? in
            guard Int32(entry) != nil,
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { return nil }
            // pid (comm) state ppid pgrp ...: after the name, the group is the third field.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[2]) == group else { return nil }
            return String(stat[stat.index(after: open)..<close])
        }
    }

    static func groupIsGone(_ group: pid_t) -> Bool {
        kill(-group, 0) != 0 && errno == ESRCH
    }

    static func waitUntil(_ timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test("a prepared command does not run before the launch, which runs it with the entry in its environment")
    func launchRunsThePreparedCommand() async throws {
        let scratch = try Scratch()
        let output = scratch.path("token")
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "printf '%s' \"$BATON_TOKEN:$BATON_KEY\" > '\(output)'"],
            environment: ["PATH": "/usr/bin:/bin", "BATON_KEY": "jobs"])
        // The keeper waits alone in the group: nothing of the command runs before the launch. (It names itself
        // once forked: wait for that.)
        #expect(await Self.waitUntil(.seconds(5)) { Self.commandNames(inGroup: child.pid) == ["baton keeper"] })
        let names = Self.commandNames(inGroup: child.pid)
        #expect(names == ["baton keeper"], "the group before the launch: \(names)")
        #expect(!FileManager.default.fileExists(atPath: output))

        #expect(try await child.launch(adding: ["BATON_TOKEN=42"]) == .running)
        let exit = await child.exitWithGroup(grace: .seconds(1))
        #expect(exit == ChildProcess.Exit(code: 0, signal: nil))
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "42:jobs")
        #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
    }

    @Test("a launch adds every entry it is given, and refuses more entries than the keeper holds")
    func launchAddsEveryEntry() async throws {
        let scratch = try Scratch()
        let output = scratch.path("entries")
        let long = String(repeating: "d", count: 400)
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "printf '%s' \"$A|$B|$C|$D|$KEPT\" > '\(output)'"],
            environment: ["PATH": "/usr/bin:/bin", "KEPT": "k"])
        #expect(try await child.launch(adding: ["A=1", "B=", "C=x=y", "D=\(long)"]) == .running)
        #expect(await child.exitWithGroup(grace: .seconds(1)) == ChildProcess.Exit(code: 0, signal: nil))
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "1||x=y|\(long)|k")

        let tooMany = try await ChildProcess.prepare(["true"], environment: ["PATH": "/usr/bin:/bin"])
        let error = await #expect(throws: ChildProcess.SpawnError.self) {
            try await tooMany.launch(adding: ["A=1", "B=2", "C=3", "D=4", "E=5"])
        }
        #expect(error?.errorNumber == E2BIG)
        let tooLong = try await ChildProcess.prepare(["true"], environment: ["PATH": "/usr/bin:/bin"])
        let longError = await #expect(throws: ChildProcess.SpawnError.self) {
            try await tooLong.launch(adding: ["A=\(long)", "B=\(long)"])
        }
        #expect(longError?.errorNumber == E2BIG)
    }

    @Test("an abandoned command never runs, and its processes end")
    func abandonedCommandNeverRuns() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ran")
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "touch '\(marker)'"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(await Self.waitUntil(.seconds(5)) { Self.commandNames(inGroup: child.pid) == ["baton keeper"] })
        child.abandon()
        // The keeper ends on its own (status 0) without starting anything.
        let exit = await child.exit()
        #expect(exit == ChildProcess.Exit(code: 0, signal: nil))
        #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
        #expect(!FileManager.default.fileExists(atPath: marker))
        // A second abandon is a no-op.
        child.abandon()
    }

    @Test("a command that cannot be executed fails at the launch: 127 not found, 126 not executable")
    func launchReportsExecFailures() async throws {
        let scratch = try Scratch()
        let notExecutable = scratch.path("data.txt")
        try "not a program".write(toFile: notExecutable, atomically: true, encoding: .utf8)
        for (path, code) in [(scratch.path("missing"), Int32(127)), (notExecutable, Int32(126))] {
            let child = try await ChildProcess.prepare([path], environment: ["PATH": "/usr/bin:/bin"])
            do {
                _ = try await child.launch()
                Issue.record("\(path) was launched")
            } catch {
                #expect(error.exitCode == code, "\(path): \(error.reason)")
            }
            #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
        }
    }

    @Test("a launch whose SIGTERM time has passed is refused by the keeper, and nothing runs")
    func lateLaunchIsRefused() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ran")
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "touch '\(marker)'"], environment: ["PATH": "/usr/bin:/bin"])
        // The kill time is 50 ms ahead, the grace 100 ms: SIGTERM was due 50 ms ago.
        let outcome = try await child.launch(
            term: 7, killAt: BootTime.now + .milliseconds(50), grace: .milliseconds(100))
        #expect(outcome == .refused)
        #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(await child.exit() == ChildProcess.Exit(code: 0, signal: nil))
    }

    @Test("the keeper alone sends SIGTERM at the kill time less the grace, and SIGKILL at the kill time")
    func watchdogStopsTheCommand() async throws {
        let scratch = try Scratch()
        let term = scratch.path("term")
        // The command ignores SIGTERM (noting when it came), so only SIGKILL ends it.
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "trap 'echo term > \(term)' TERM; while :; do sleep 0.02; done"],
            environment: ["PATH": "/usr/bin:/bin"])
        let launched = BootTime.now
        // Room for a slow launch on a loaded machine: the keeper would refuse one that reaches it after SIGTERM time.
        let killAt = launched + .milliseconds(2000)
        #expect(try await child.launch(term: 1, killAt: killAt, grace: .milliseconds(700)) == .running)
        let exit = await child.exit()
        let ended = BootTime.now
        #expect(!child.wasKilled, "the keeper, not baton, was to kill it")
        // The keeper goes with its group at SIGKILL: what is left of it is re-parented here and reaped.
        _ = await child.exitWithGroup(grace: .milliseconds(100))
        #expect(exit == ChildProcess.Exit(code: 128 + SIGKILL, signal: SIGKILL))
        #expect(child.watchdogSignal == SIGKILL)
        #expect(FileManager.default.fileExists(atPath: term), "no SIGTERM before the SIGKILL")
        #expect(ended >= killAt, "killed \(killAt - ended) before the kill time")
        #expect(ended - killAt < .seconds(3))
        #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
    }

    @Test("a later kill time of the same term moves the watchdog on; an earlier one or another term's does not")
    func extendMovesTheKillTime() async throws {
        let child = try await ChildProcess.prepare(["sleep", "30"], environment: ["PATH": "/usr/bin:/bin"])
        let launched = BootTime.now
        // The kill time is extended only before SIGTERM time (3.5 s here): room for a slow launch on a loaded machine.
        let first = launched + .milliseconds(4000)
        #expect(try await child.launch(term: 5, killAt: first, grace: .milliseconds(500)) == .running)
        #expect(!child.extend(killAt: first + .seconds(10), term: 6), "another term's kill time was sent")
        #expect(!child.extend(killAt: first - .milliseconds(100), term: 5), "an earlier kill time was sent")
        let later = launched + .milliseconds(6000)
        #expect(child.extend(killAt: later, term: 5))
        #expect(child.keeperKillAt == later)
        let exit = await child.exit()
        let ended = BootTime.now
        // sleep dies of the SIGTERM sent at `later − 500 ms`, well after the first kill time.
        #expect(exit.signal == SIGTERM)
        #expect(child.watchdogSignal == SIGTERM)
        #expect(ended >= later - .milliseconds(500))
    }

    @Test("on a stop, SIGKILL comes no later than the keeper's kill time, however long the grace")
    func stopKillsByTheKeepersKillTime() async throws {
        let scratch = try Scratch()
        let ready = scratch.path("ready")
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "trap '' TERM; : > \"$1\"; while :; do sleep 0.02; done", "sh", ready],
            environment: ["PATH": "/usr/bin:/bin"])
        let killAt = BootTime.now + .milliseconds(3000)
        // The keeper's own SIGTERM comes at `killAt − 1 s`; baton's stop asks for a 10 s grace.
        #expect(try await child.launch(term: 1, killAt: killAt, grace: .seconds(1)) == .running)
        // The command ignores SIGTERM from now on (a stop sent before its trap would end it at once).
        #expect(await Self.waitUntil(.seconds(2)) { FileManager.default.fileExists(atPath: ready) })
        let stopped = ContinuousClock.now
        child.stop(SIGTERM, grace: .seconds(10))
        let due = try #require(child.killDue)
        #expect(due - stopped <= .seconds(3), "SIGKILL scheduled \(due - stopped) after the stop")
        let exit = await child.exit()
        #expect(exit.signal == SIGKILL)
        #expect(BootTime.now - killAt < .seconds(3), "SIGKILL came long after the keeper's kill time")
    }

    @Test("a stop tells whether it came while the command ran, or after it had ended by itself")
    func stoppedWhileRunning() async throws {
        let ended = try await ChildProcess.prepare(["true"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(try await ended.launch(adding: []) == .running)
        #expect(await ended.exitWithGroup(grace: .seconds(1)) == ChildProcess.Exit(code: 0, signal: nil))
        ended.stop(SIGTERM, grace: .seconds(1), once: true)
        #expect(!ended.wasStoppedWhileRunning)

        let running = try await ChildProcess.prepare(["sleep", "30"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(try await running.launch(adding: []) == .running)
        running.stop(SIGTERM, grace: .seconds(1), once: true)
        let exit = await running.exitWithGroup(grace: .seconds(1))
        #expect(exit == ChildProcess.Exit(code: 128 + SIGTERM, signal: SIGTERM))
        #expect(running.wasStoppedWhileRunning)
    }
}
