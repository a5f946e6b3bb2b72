import Foundation
import Synchronization
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton run` at the term's deadline: an unreachable store, a stopped or hung `baton`, a late launch, job control.
extension RunCommandTests {
    @Test("a store that cannot be reached yet is waited for, not an exit, and its password is never printed")
    func waitsForTheStore() throws {
        let scratch = try Scratch()
        let waiting = try Baton(
            [
                "--store", "postgres://baton:pw-not-shown@127.0.0.1:1/baton", "run", "--key", "k", "--", "sh", "-c",
                "touch \"$DIR/ran\"",
            ],
            in: scratch, name: "waiting")
        #expect(
            Self.waitUntil(.seconds(20)) {
                waiting.standardError.contains("cannot connect") && waiting.standardError.contains("; retrying")
            },
            "\(waiting.standardError)")
        #expect(waiting.process.isRunning, "baton run exited: \(waiting.standardError)")
        #expect(!waiting.standardError.contains("pw-not-shown"))
        waiting.signal(SIGTERM)
        let status = waiting.exit()
        #expect(
            status == SIGTERM || status == 128 + SIGTERM,
            "exit status \(String(describing: status)) (nil: still running 20 s after SIGTERM): \(waiting.standardError)"
        )
        #expect(!scratch.exists("ran"))
        #expect(!waiting.standardError.contains("pw-not-shown"))
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
        let locker = try Self.lockStore(scratch, seconds: 10)
        defer { if locker.isRunning { kill(locker.processIdentifier, SIGKILL) } }
        #expect(scratch.exists("locked"))
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
                Self.waitUntil(.seconds(5)) { Self.isStopped(command) || scratch.exists("a.term") },
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
        #expect(Self.waitUntil(.seconds(5)) { Self.isStopped(command) }, "Ctrl-Z left the command running")
        // Stopped: the command's loop does not turn.
        let ticks = scratch.read("ticks").count
        usleep(300_000)
        #expect(scratch.read("ticks").count == ticks)

        baton.signal(SIGCONT)
        #expect(Self.waitUntil(.seconds(5)) { !Self.isStopped(command) }, "SIGCONT left the command stopped")
        #expect(Self.waitUntil(.seconds(5)) { scratch.read("ticks").count > ticks })
        let (_, leader, _) = try Self.runToEnd(scratch.store + ["leader", "k"], in: scratch)
        #expect(leader.hasPrefix("A (token 1"), "the term was to go on: \(leader)")
        baton.signal(SIGTERM)
        #expect(baton.exit() == 128 + SIGTERM)
    }
}
