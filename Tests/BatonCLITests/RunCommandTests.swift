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

        init(_ arguments: [String], in scratch: Scratch, name: String) throws {
            self.name = name
            self.scratch = scratch
            process.executableURL = try CommandLineTests.executable()
            process.arguments = arguments
            process.currentDirectoryURL = scratch.directory
            var environment = ProcessInfo.processInfo.environment
            environment["BATON_STORE"] = nil
            environment["DIR"] = scratch.directory.path
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

    /// A shell command for the second candidate: before anything else it records whether the first candidate's
    /// command (its pid in `$DIR/a.pid`) is still alive — a live process, not a zombie — then marks its start.
    static let overlapCheck =
        "a=$(cat \"$DIR/a.pid\"); if [ -e /proc/$a ] && ! grep -q ') [ZX] ' /proc/$a/stat; then "
        + "echo \"overlap: $a alive\" >> \"$DIR/overlap\"; fi; touch \"$DIR/b.started\"; exec sleep 1000"

    /// Runs `baton` to its end (at most 20 s) and returns its status, standard output and standard error.
    static func runToEnd(_ arguments: [String], in scratch: Scratch) throws -> (Int32, String, String) {
        let name = "once-\(UUID().uuidString)"
        let baton = try Baton(arguments, in: scratch, name: name)
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

    @Test("--retry waits for a store that cannot be reached yet instead of exiting, and never prints its password")
    func retryWaitsForTheStore() throws {
        let scratch = try Scratch()
        let waiting = try Baton(
            [
                "--store", "postgres://baton:pw-not-shown@127.0.0.1:1/baton", "run", "--key", "k", "--retry", "--",
                "sh", "-c", "touch \"$DIR/ran\"",
            ],
            in: scratch, name: "retry")
        #expect(
            Self.waitUntil(.seconds(20)) { waiting.standardError.components(separatedBy: "trying again").count > 2 })
        #expect(waiting.process.isRunning, "baton run --retry exited: \(waiting.standardError)")
        #expect(!waiting.standardError.contains("pw-not-shown"))
        waiting.signal(SIGTERM)
        let status = waiting.exit()
        #expect(status == SIGTERM || status == 128 + SIGTERM)
        #expect(!scratch.exists("ran"))
    }

    @Test("when the store stays unreachable the command is stopped at the local deadline")
    func stoppedAtDeadline() throws {
        let scratch = try Scratch()
        let script = Self.stubbornScript(pidFile: "child.pid", termFile: "term")
        let baton = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "A", "--ttl", "1s", "--", "sh", "-c", script],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("child.pid") }, "\(baton.standardError)")

        // Another process takes SQLite's write lock and keeps it: no renewal can succeed.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys, time, os
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
            c.execute('BEGIN EXCLUSIVE')
            open(sys.argv[2], 'w').close()
            time.sleep(10)
            """,
            scratch.path("baton.db"), scratch.path("locked"),
        ]
        try ChildProcess.forkLock.withLock { _ in try locker.run() }
        defer { if locker.isRunning { kill(locker.processIdentifier, SIGKILL) } }
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("locked") })
        let locked = ContinuousClock.now

        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("term") })
        let stopped = ContinuousClock.now - locked
        #expect(locker.isRunning, "the command must be stopped while the store is still unreachable")
        // t0 + ttl − margin − grace is at most 700 ms after the lock; allow for a loaded machine.
        #expect(stopped < .seconds(3))
        #expect(baton.exit() == 75)
        #expect(scratch.read("term") == "term\n")
        #expect(baton.standardError.contains("no renewal succeeded before the local deadline"))
    }

    @Test(
        "a stopped baton (SIGSTOP of its pid, Ctrl-Z): the keeper ends its command before another can start",
        arguments: [SIGSTOP, SIGTSTP])
    func stoppedBatonsCommandEndsInTime(signal: Int32) throws {
        let scratch = try Scratch()
        let script = Self.stubbornScript(pidFile: "a.pid", termFile: "a.term")
        let first = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "A", "--ttl", "1s", "--", "sh", "-c", script],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a.pid") }, "\(first.standardError)")
        let command = try scratch.pid("a.pid")
        let second = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "B", "--ttl", "1s", "--", "sh", "-c", Self.overlapCheck],
            in: scratch, name: "b")
        #expect(
            Self.waitUntil(.seconds(20)) { second.standardError.contains("waiting: k is held by A") },
            "\(second.standardError)")

        // SIGSTOP stops baton alone: its command, in the keeper's group, is not touched. SIGTSTP (Ctrl-Z) stops
        // the command's group too, with baton.
        first.signal(signal)
        let stopped = ContinuousClock.now
        #expect(Self.waitUntil(.seconds(5)) { Self.state(first.process.processIdentifier) == "T" })
        if signal == SIGTSTP {
            // The watchdog may already have ended the stopped command (its SIGTERM can be due within 400 ms).
            #expect(
                Self.waitUntil(.seconds(5)) { Self.state(command) == "T" || scratch.exists("a.term") },
                "Ctrl-Z left the command running")
        }
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("b.started") }, "\(second.standardError)")
        let takeover = ContinuousClock.now - stopped
        // The successor's command checked, before anything else, whether the first command still ran.
        #expect(!scratch.exists("overlap"), "two commands ran at once: \(scratch.read("overlap"))")
        #expect(!Self.isAlive(command), "the first command still runs while the second one does")
        // The keeper, not baton (stopped all along), sent SIGTERM: the command's trap wrote it.
        #expect(scratch.read("a.term") == "term\n")
        #expect(Self.state(first.process.processIdentifier) == "T", "baton was to stay stopped during the test")
        #expect(takeover < .seconds(10))

        first.signal(SIGCONT)
        #expect(first.exit() == 75)
        second.signal(SIGTERM)
        #expect(second.exit() == 128 + SIGTERM)
    }

    /// The pid of the keeper `baton` (pid `parent`) has forked, from /proc.
    static func keeper(of parent: pid_t) -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")"), stat.contains("(baton keeper)")
            else { continue }
            // pid (comm) state ppid ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == parent { return pid }
        }
        return nil
    }

    /// Holds SQLite's write lock on the scratch store for `seconds`, so that no renewal can succeed; returns once
    /// the lock is held.
    static func lockStore(_ scratch: Scratch, seconds: Int) throws -> Process {
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = [
            "python3", "-c",
            """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
            c.execute('BEGIN EXCLUSIVE')
            open(sys.argv[2], 'w').close()
            time.sleep(\(seconds))
            """,
            scratch.path("baton.db"), scratch.path("locked"),
        ]
        try ChildProcess.forkLock.withLock { _ in try locker.run() }
        _ = waitUntil(.seconds(20)) { scratch.exists("locked") }
        return locker
    }

    @Test("no launch after the term's deadline: a keeper that gets the launch too late refuses it, nothing runs")
    func lateLaunchIsRefused() throws {
        let scratch = try Scratch()
        let first = try Baton(
            scratch.store + [
                "run", "--key", "k", "--id", "A", "--ttl", "1s", "--", "sh", "-c",
                "touch \"$DIR/a\"; until [ -e \"$DIR/a.release\" ]; do sleep 0.02; done",
            ],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a") }, "\(first.standardError)")
        let second = try Baton(
            scratch.store + [
                "run", "--key", "k", "--id", "B", "--ttl", "1s", "--", "sh", "-c", "touch \"$DIR/b.ran\"",
            ],
            in: scratch, name: "b")
        #expect(
            Self.waitUntil(.seconds(20)) { second.standardError.contains("waiting: k is held by A") },
            "\(second.standardError)")
        // B's keeper, stopped, cannot read the launch B sends once elected.
        // The keeper is forked for the campaign, maybe after the first status line.
        #expect(Self.waitUntil(.seconds(10)) { Self.keeper(of: second.process.processIdentifier) != nil })
        let keeper = try #require(Self.keeper(of: second.process.processIdentifier))
        kill(keeper, SIGSTOP)
        defer { kill(keeper, SIGCONT) }
        _ = FileManager.default.createFile(atPath: scratch.path("a.release"), contents: nil)
        #expect(first.exit() == 0)
        #expect(
            Self.waitUntil(.seconds(20)) {
                (try? Self.runToEnd(scratch.store + ["leader", "k"], in: scratch).1.hasPrefix("B (token 2")) == true
            })
        // No renewal of B's term succeeds from now on: its deadline passes while the launch waits in the pipe.
        let locker = try Self.lockStore(scratch, seconds: 3)
        defer { if locker.isRunning { kill(locker.processIdentifier, SIGKILL) } }
        usleep(1_500_000)
        kill(keeper, SIGCONT)
        #expect(second.exit() == 75)
        #expect(!scratch.exists("b.ran"), "the command ran after its term's deadline")
        #expect(second.standardError.contains("sh was not started"), "\(second.standardError)")
    }

    @Test("Ctrl-Z stops the command's group with baton; SIGCONT continues both, and the term goes on")
    func jobControlStopsAndContinues() throws {
        let scratch = try Scratch()
        let script =
            "echo $$ > \"$DIR/a.tmp\"; mv \"$DIR/a.tmp\" \"$DIR/a.pid\"; "
            + "while :; do sleep 0.05; echo x >> \"$DIR/ticks\"; done"
        let baton = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "A", "--ttl", "10s", "--", "sh", "-c", script],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a.pid") }, "\(baton.standardError)")
        let command = try scratch.pid("a.pid")
        baton.signal(SIGTSTP)
        #expect(Self.waitUntil(.seconds(5)) { Self.state(baton.process.processIdentifier) == "T" })
        #expect(Self.waitUntil(.seconds(5)) { Self.state(command) == "T" }, "Ctrl-Z left the command running")
        // Stopped: the command's loop does not turn.
        let ticks = scratch.read("ticks").count
        usleep(300_000)
        #expect(scratch.read("ticks").count == ticks)

        baton.signal(SIGCONT)
        #expect(Self.waitUntil(.seconds(5)) { Self.state(command) != "T" }, "SIGCONT left the command stopped")
        #expect(Self.waitUntil(.seconds(5)) { scratch.read("ticks").count > ticks })
        let (_, leader, _) = try Self.runToEnd(scratch.store + ["leader", "k"], in: scratch)
        #expect(leader.hasPrefix("A (token 1"), "the term was to go on: \(leader)")
        baton.signal(SIGTERM)
        #expect(baton.exit() == 128 + SIGTERM)
    }

    @Test("cron mode: five concurrent invocations run the command once")
    func roundRunsOnce() throws {
        let scratch = try Scratch()
        let batons = try (1...5).map { index in
            try Baton(
                scratch.store + [
                    "run", "--key", "nightly", "--round", "2026-11-23", "--id", "host-\(index)", "--", "sh", "-c",
                    "echo \"$BATON_HOLDER $BATON_ROUND\" >> \"$DIR/count\"",
                ],
                in: scratch, name: "host-\(index)")
        }
        let statuses = batons.map { $0.exit() }
        #expect(statuses == [0, 0, 0, 0, 0])
        let lines = scratch.read("count").split(separator: "\n")
        #expect(lines.count == 1)
        let winner = try #require(lines.first.map { String($0.split(separator: " ")[0]) })
        #expect(lines.first == "\(winner) 2026-11-23")
        let losers = batons.filter { $0.name != winner }
        #expect(losers.count == 4)
        for loser in losers { #expect(loser.standardError == "baton: lost: winner is \(winner)\n") }

        // The winner's completion is recorded: running again there does not run the command again.
        let (again, _, againError) = try Self.runToEnd(
            scratch.store + [
                "run", "--key", "nightly", "--round", "2026-11-23", "--id", winner, "--", "sh", "-c",
                "echo again >> \"$DIR/count\"",
            ],
            in: scratch)
        #expect(again == 0)
        #expect(againError.contains("nightly/2026-11-23 was already completed by \(winner)"))
        #expect(scratch.read("count").split(separator: "\n").count == 1)

        let (lost, _, lostError) = try Self.runToEnd(
            scratch.store + [
                "run", "--key", "nightly", "--round", "2026-11-23", "--id", "host-9", "--lost-exit-code", "9",
                "--quiet", "--", "true",
            ],
            in: scratch)
        #expect(lost == 9)
        #expect(lostError == "")
    }

    @Test("cron mode: a failing command is not recorded as completed")
    func roundFailureNotCompleted() throws {
        let scratch = try Scratch()
        let round = ["run", "--key", "nightly", "--round", "r1", "--id", "host-a", "--", "sh", "-c"]
        let (failed, _, _) = try Self.runToEnd(
            scratch.store + round + ["echo x >> \"$DIR/count\"; exit 4"], in: scratch)
        #expect(failed == 4)
        let (retried, _, _) = try Self.runToEnd(scratch.store + round + ["echo x >> \"$DIR/count\""], in: scratch)
        #expect(retried == 0)
        #expect(scratch.read("count") == "x\nx\n")
        let (other, _, otherError) = try Self.runToEnd(
            scratch.store + ["complete", "nightly", "r1", "--candidate", "host-b"], in: scratch)
        #expect(other == 1)
        #expect(otherError == "baton: nightly/r1 was already completed by host-a\n")
    }

    @Test("exit statuses: the command's, 128 + signal, 126, 127, 2 and 64")
    func exitStatuses() throws {
        let scratch = try Scratch()
        let run = scratch.store + ["run", "--key", "k", "--quiet", "--"]
        let (killed, _, _) = try Self.runToEnd(run + ["sh", "-c", "kill -KILL $$"], in: scratch)
        #expect(killed == 128 + SIGKILL)

        let (missing, _, missingError) = try Self.runToEnd(run + ["no-such-command-baton"], in: scratch)
        #expect(missing == 127)
        #expect(missingError == "baton: cannot run no-such-command-baton: No such file or directory\n")

        _ = FileManager.default.createFile(atPath: scratch.path("not-executable"), contents: Data("true\n".utf8))
        let (denied, _, deniedError) = try Self.runToEnd(run + [scratch.path("not-executable")], in: scratch)
        #expect(denied == 126)
        #expect(deniedError.hasSuffix("not-executable: Permission denied\n"))

        let (grace, _, graceError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "k", "--ttl", "1s", "--grace", "1s", "--", "true"], in: scratch)
        #expect(grace == 2)
        #expect(graceError.hasPrefix("baton: --grace 1s does not fit in --ttl 1s"))

        let (renew, _, renewError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "k", "--renew-interval", "7s", "--", "true"], in: scratch)
        #expect(renew == 2)
        #expect(renewError.hasPrefix("baton: --renew-interval 7s must be shorter than ttl − margin − grace"))

        let (usage, _, usageError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "k", "--round", "r", "--retry", "--", "true"], in: scratch)
        #expect(usage == 64)
        #expect(usageError.contains("--retry has no meaning with --round"))

        let (noCommand, _, _) = try Self.runToEnd(scratch.store + ["run", "--key", "k"], in: scratch)
        #expect(noCommand == 64)
    }

    @Test("resign refuses a holder that does not hold the key")
    func resignOtherHolder() throws {
        let scratch = try Scratch()
        let (none, noneOutput, _) = try Self.runToEnd(scratch.store + ["resign", "k", "--id", "A"], in: scratch)
        #expect(none == 1)
        #expect(noneOutput == "no leader\n")
        let holder = try Baton(
            scratch.store + ["run", "--key", "k", "--id", "A", "--", "sh", "-c", "touch \"$DIR/a\"; exec sleep 1000"],
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a") })
        let (other, otherOutput, _) = try Self.runToEnd(scratch.store + ["resign", "k", "--id", "B"], in: scratch)
        #expect(other == 1)
        #expect(otherOutput == "k is held by A, not B\n")
        holder.signal(SIGTERM)
        #expect(holder.exit() == 128 + SIGTERM)
    }

    @Test("watch prints one line per leader change")
    func watchLines() throws {
        let scratch = try Scratch()
        let watcher = try Baton(scratch.store + ["watch", "k", "--json"], in: scratch, name: "watch")
        #expect(Self.waitUntil(.seconds(20)) { watcher.standardOutput.contains(#""leader":null"#) })
        // The command holds the key until the watcher has printed its line (changes may be coalesced).
        let (status, _, _) = try Self.runToEnd(
            scratch.store + [
                "run", "--key", "k", "--id", "A", "--quiet", "--", "sh", "-c",
                "until grep -q holder \"$DIR/watch.out\"; do sleep 0.01; done",
            ],
            in: scratch)
        #expect(status == 0)
        #expect(
            Self.waitUntil(.seconds(20)) { watcher.standardOutput.split(separator: "\n").count >= 3 },
            "\(watcher.standardOutput)")
        watcher.signal(SIGINT)
        #expect(watcher.exit() == 0)
        let lines = watcher.standardOutput.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasSuffix(#""leader":null}"#))
        #expect(lines[1].contains(#""leader":{"holder":"A","metadata":null,"remaining_ms":"#))
        #expect(lines[1].hasSuffix(#""token":1}}"#))
        #expect(lines[2].hasSuffix(#""leader":null}"#))
    }
}
