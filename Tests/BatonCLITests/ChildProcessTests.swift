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
        // The keeper waits alone in the group: nothing of the command runs before the launch.
        let names = Self.commandNames(inGroup: child.pid)
        #expect(names == ["baton keeper"], "the group before the launch: \(names)")
        #expect(!FileManager.default.fileExists(atPath: output))

        try await child.launch(adding: "BATON_TOKEN=42")
        let exit = await child.exitWithGroup(grace: .seconds(1))
        #expect(exit == ChildProcess.Exit(code: 0, signal: nil))
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "42:jobs")
        #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
    }

    @Test("an abandoned command never runs, and its processes end")
    func abandonedCommandNeverRuns() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("ran")
        let child = try await ChildProcess.prepare(
            ["sh", "-c", "touch '\(marker)'"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(Self.commandNames(inGroup: child.pid) == ["baton keeper"])
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
                try await child.launch()
                Issue.record("\(path) was launched")
            } catch {
                #expect(error.exitCode == code, "\(path): \(error.reason)")
            }
            #expect(await Self.waitUntil(.seconds(5)) { Self.groupIsGone(child.pid) })
        }
    }
}
