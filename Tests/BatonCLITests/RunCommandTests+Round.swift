import Foundation
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton run` in cron mode, its exit statuses, and the commands beside it (resign, watch).
extension RunCommandTests {
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
