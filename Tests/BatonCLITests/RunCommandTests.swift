import Foundation
import Synchronization
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton run` with real processes on a shared SQLite file: commands stopped on loss, killed after the grace, never
/// outliving `baton`, handed over on a graceful stop, run once per round.
///
/// Every wait is for a condition (a file appearing, a process ending) and bounded in real time.
@Suite("baton run: real processes on SQLite", .serialized)
struct RunCommandTests {
    /// A scratch directory with an SQLite store, removed at the end.
    final class Scratch {
        let directory: URL

        init() throws {
            directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("baton-run-\(UUID().uuidString)", isDirectory: true)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        /// `--store sqlite:<dir>/baton.db`.
        var store: [String] { ["--store", "sqlite:" + path("baton.db")] }

        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

        func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

        func read(_ name: String) -> String {
            (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? ""
        }

        /// The pid a command wrote to `name`.
        func pid(_ name: String) throws -> pid_t {
            try #require(pid_t(read(name).trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }

    /// A `baton` process started in the background, its output going to files.
    final class Baton {
        let process = Process()
        let name: String
        let scratch: Scratch

        /// Starts `baton arguments` with this process's environment, `BATON_STORE` removed, `DIR` set to the
        /// scratch directory and `environment` on top (a nil value removes a variable).
        init(_ arguments: [String], in scratch: Scratch, name: String, environment extra: [String: String?] = [:])
            throws
        {
            self.name = name
            self.scratch = scratch
            process.executableURL = try CommandLineTests.executable()
            process.arguments = arguments
            process.currentDirectoryURL = scratch.directory
            var environment = ProcessInfo.processInfo.environment
            environment["BATON_STORE"] = nil
            environment["DIR"] = scratch.directory.path
            for (name, value) in extra { environment[name] = value }
            process.environment = environment
            _ = FileManager.default.createFile(atPath: scratch.path("\(name).out"), contents: nil)
            _ = FileManager.default.createFile(atPath: scratch.path("\(name).err"), contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch.path("\(name).out")))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch.path("\(name).err")))
            process.standardInput = FileHandle.nullDevice
            try ChildProcess.forkLock.withLock { _ in try process.run() }
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        var standardOutput: String { scratch.read("\(name).out") }
        var standardError: String { scratch.read("\(name).err") }

        func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

        /// Waits until the process exits (at most `timeout`) and returns its status, or nil if it is still running.
        func exit(within timeout: Duration = .seconds(20)) -> Int32? {
            guard waitUntil(timeout, { !process.isRunning }) else { return nil }
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// Polls `condition` every 10 ms until it holds or `timeout` has passed; returns whether it held.
    static func waitUntil(_ timeout: Duration, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    /// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            let state = stat[close...].dropFirst(2).first
        else { return false }
        return state != "Z" && state != "X"
    }

    /// The state letter of `pid` in /proc (`R`, `S`, `T` stopped, `Z`...), or nil if it is gone.
    static func state(_ pid: pid_t) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[close...].dropFirst(2).first
    }

    /// Whether `pid` is stopped by job control: in state T, or held by a stopped child. A shell runs a command by
    /// vfork, and a signal that stops the child between its vfork and its exec leaves the shell in uninterruptible
    /// sleep (D) until the child execs: it cannot run, though its state is not T.
    static func isStopped(_ pid: pid_t) -> Bool {
        switch state(pid) {
        case "T": return true
        case "D": return children(of: pid).contains { state($0) == "T" }
        default: return false
        }
    }

    /// The children of `pid` (its main thread's, as a shell has no other).
    static func children(of pid: pid_t) -> [pid_t] {
        let list = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return list.split(separator: " ").compactMap { pid_t($0) }
    }

    /// A shell command for the second candidate: before anything else it records whether the first candidate's
    /// command (its pid in `$DIR/a.pid`) is still alive — a live process, not a zombie — then marks its start.
    static let overlapCheck =
        "a=$(cat \"$DIR/a.pid\"); if [ -e /proc/$a ] && ! grep -q ') [ZX] ' /proc/$a/stat; then "
        + "echo \"overlap: $a alive\" >> \"$DIR/overlap\"; fi; touch \"$DIR/b.started\"; exec sleep 1000"

    /// Runs `baton` to its end (at most 20 s) and returns its status, standard output and standard error.
    static func runToEnd(
        _ arguments: [String], in scratch: Scratch, environment: [String: String?] = [:]
    ) throws -> (Int32, String, String) {
        let name = "once-\(UUID().uuidString)"
        let baton = try Baton(arguments, in: scratch, name: name, environment: environment)
        let status = try #require(baton.exit(), "baton \(arguments) did not exit within 20 s")
        return (status, baton.standardOutput, baton.standardError)
    }

    /// A shell script that writes its pid to `pidFile`, writes `term` to `termFile` on SIGTERM (and exits 0 unless
    /// `ignoreTerm`), and otherwise runs until stopped.
    static func stubbornScript(pidFile: String, termFile: String, ignoreTerm: Bool = false) -> String {
        // Ignoring TERM, the script also records when it got it and, on every turn of its loop, that it still runs
        // (nanoseconds of this host's clock), so a test can tell how long it outlived SIGTERM.
        let onTerm =
            ignoreTerm
            ? "echo term >> \"$DIR/\(termFile)\"; date +%s%N > \"$DIR/\(termFile)-at\""
            : "echo term > \"$DIR/\(termFile)\"; exit 0"
        let loop =
            ignoreTerm
            ? "while :; do sleep 0.05; date +%s%N > \"$DIR/alive-at.tmp\"; mv \"$DIR/alive-at.tmp\" \"$DIR/alive-at\"; done"
            : "while :; do sleep 0.05; done"
        return
            "trap '\(onTerm)' TERM; echo $$ > \"$DIR/\(pidFile).tmp\"; mv \"$DIR/\(pidFile).tmp\" \"$DIR/\(pidFile)\"; "
            + loop
    }

    @Test("the command gets its environment and the lease is released as soon as it exits")
    func environmentAndRelease() throws {
        let scratch = try Scratch()
        let (status, output, _) = try Self.runToEnd(
            scratch.store + [
                "run", "--key", "jobs/env", "--id", "host-a", "--", "sh", "-c",
                "echo \"$BATON_KEY $BATON_TOKEN $BATON_HOLDER\"; exit 7",
            ],
            in: scratch
        )
        #expect(status == 7)
        #expect(output == "jobs/env 1 host-a\n")
        let (leader, leaderOutput, _) = try Self.runToEnd(scratch.store + ["leader", "jobs/env"], in: scratch)
        #expect(leader == 1)
        #expect(leaderOutput == "no leader\n")
    }

    @Test("on loss the command's process group gets SIGTERM and baton exits 75")
    func terminatedOnLoss() throws {
        let scratch = try Scratch()
        let script = Self.stubbornScript(pidFile: "child.pid", termFile: "term")
        let baton = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "A", "--ttl", "2s", "--", "sh", "-c", script],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("child.pid") }, "\(baton.standardError)")
        let child = try scratch.pid("child.pid")
        #expect(Self.isAlive(child))

        let (resigned, resignOutput, _) = try Self.runToEnd(scratch.store + ["resign", "k", "--id", "A"], in: scratch)
        #expect(resigned == 0)
        #expect(resignOutput == "released k (token 1, held by A)\n")

        #expect(baton.exit() == 75)
        #expect(scratch.read("term") == "term\n")
        #expect(!Self.isAlive(child))
        #expect(baton.standardError.contains("baton: lost leadership of k (token 1): the store refused to renew"))
        #expect(baton.standardError.contains("sh was stopped with SIGTERM (exit status 0)"))
        let (leader, _, _) = try Self.runToEnd(scratch.store + ["leader", "k"], in: scratch)
        #expect(leader == 1, "baton must not keep the key after a loss")
    }

    @Test("a command that ignores SIGTERM is killed with SIGKILL after the grace")
    func killedAfterGrace() throws {
        let scratch = try Scratch()
        let script = Self.stubbornScript(pidFile: "child.pid", termFile: "term", ignoreTerm: true)
        let baton = try Baton(
            scratch.store + [
                "run", "--key", "k", "--id", "A", "--ttl", "3s", "--grace", "400ms", "--", "sh", "-c", script,
            ],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("child.pid") }, "\(baton.standardError)")
        let child = try scratch.pid("child.pid")

        _ = try Self.runToEnd(scratch.store + ["resign", "k", "--id", "A"], in: scratch)
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("term") })
        #expect(baton.exit() == 75)
        #expect(!Self.isAlive(child))
        // The command ignored SIGTERM and kept running until SIGKILL: its last sign of life came at least most of
        // the 400 ms grace after it got SIGTERM (its loop turns every 50 ms, later when the machine is busy).
        let termAt = Int64(scratch.read("term-at").trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max
        let aliveAt = Int64(scratch.read("alive-at").trimmingCharacters(in: .whitespacesAndNewlines)) ?? .min
        #expect(aliveAt - termAt >= 250_000_000, "SIGKILL came before the grace was over")
        #expect(scratch.read("term") == "term\n")
        #expect(baton.standardError.contains("sh was killed with SIGKILL after the 400ms grace"))
    }

    @Test("kill -9 of baton leaves no command running")
    func commandDiesWithBaton() throws {
        let scratch = try Scratch()
        let baton = try Baton(
            scratch.store + [
                "run", "--key", "k", "--", "sh", "-c",
                "echo $$ > \"$DIR/child.tmp\"; mv \"$DIR/child.tmp\" \"$DIR/child.pid\"; exec sleep 1000",
            ],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("child.pid") }, "\(baton.standardError)")
        let child = try scratch.pid("child.pid")
        #expect(Self.isAlive(child))
        baton.signal(SIGKILL)
        #expect(baton.exit() == SIGKILL)
        #expect(baton.process.terminationReason == .uncaughtSignal)
        #expect(Self.waitUntil(.seconds(5)) { !Self.isAlive(child) }, "the command outlived baton")
    }

    @Test("kill -9 of baton also kills what the command started (a shell's background job)")
    func grandchildDiesWithBaton() throws {
        let scratch = try Scratch()
        let baton = try Baton(
            scratch.store + [
                "run", "--key", "k", "--", "sh", "-c",
                "sleep 300 & echo $! > \"$DIR/grandchild.tmp\"; mv \"$DIR/grandchild.tmp\" \"$DIR/grandchild.pid\"; wait",
            ],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("grandchild.pid") }, "\(baton.standardError)")
        let grandchild = try scratch.pid("grandchild.pid")
        defer { if Self.isAlive(grandchild) { kill(grandchild, SIGKILL) } }
        #expect(Self.isAlive(grandchild))
        baton.signal(SIGKILL)
        #expect(baton.exit() == SIGKILL)
        #expect(
            Self.waitUntil(.seconds(5)) { !Self.isAlive(grandchild) },
            "the command's background job (pid \(grandchild)) outlived baton by more than 5 s")
    }

    @Test("a graceful stop hands the key over to a waiting candidate at once")
    func gracefulHandover() throws {
        let scratch = try Scratch()
        let first = try Baton(
            scratch.store + [
                "run", "--key", "k", "--id", "A", "--", "sh", "-c",
                "touch \"$DIR/a.started\"; exec sleep 1000",
            ],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a.started") }, "\(first.standardError)")
        let second = try Baton(
            scratch.store + [
                "run", "--key", "k", "--id", "B", "--", "sh", "-c",
                "touch \"$DIR/b.started\"; exec sleep 1000",
            ],
            in: scratch, name: "b")
        #expect(
            Self.waitUntil(.seconds(20)) { second.standardError.contains("baton: waiting: k is held by A (token 1)") },
            "\(second.standardError)")
        #expect(!scratch.exists("b.started"))

        let stopped = ContinuousClock.now
        first.signal(SIGTERM)
        #expect(Self.waitUntil(.seconds(5)) { scratch.exists("b.started") }, "\(second.standardError)")
        let handover = ContinuousClock.now - stopped
        // The ttl is 10 s: a handover within 5 s was a release, not an expiry.
        #expect(handover < .seconds(5))
        #expect(first.exit() == 128 + SIGTERM)

        second.signal(SIGINT)
        #expect(second.exit() == 128 + SIGINT)
        let (leader, _, _) = try Self.runToEnd(scratch.store + ["leader", "k"], in: scratch)
        #expect(leader == 1)
    }

    @Test("a stop signal while waiting leaves the election without running the command")
    func stopWhileWaiting() throws {
        let scratch = try Scratch()
        let holder = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "A", "--", "sh", "-c", "touch \"$DIR/a\"; exec sleep 1000"],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a") })
        let waiting = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "B", "--", "sh", "-c", "touch \"$DIR/b\""],
            in: scratch, name: "b")
        #expect(Self.waitUntil(.seconds(20)) { waiting.standardError.contains("waiting: k is held by A") })
        waiting.signal(SIGTERM)
        #expect(waiting.exit() == 128 + SIGTERM)
        #expect(!scratch.exists("b"))
        let (_, leader, _) = try Self.runToEnd(scratch.store + ["leader", "k"], in: scratch)
        #expect(leader.hasPrefix("A (token 1"))
        holder.signal(SIGTERM)
        #expect(holder.exit() == 128 + SIGTERM)
    }
}
