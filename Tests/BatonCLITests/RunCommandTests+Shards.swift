import Foundation
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton run --shards M`: one command per shard this member owns, moved with the fewest moves as members join and
/// leave; a command's own end ends the member; the number of shards fixed while the key is in use.
extension RunCommandTests {
    /// A command for member `name`: appends its shard, token and key to `$DIR/<name>.env`, marks that it runs on its
    /// shard (`<name>-S.running`, removed on SIGTERM), and runs until stopped.
    static func shardCommand(_ name: String) -> [String] {
        [
            "sh", "-c",
            "echo \"$BATON_SHARD $BATON_TOKEN $BATON_KEY\" >> \"$DIR/\(name).env\"; "
                + "mark=\"$DIR/\(name)-$BATON_SHARD.running\"; touch \"$mark\"; "
                + "trap 'rm -f \"$mark\"; exit 0' TERM; while :; do sleep 0.02; done",
        ]
    }

    /// The shards member `name` runs a command for now.
    static func running(_ scratch: Scratch, _ name: String, shards: Int) -> Set<Int> {
        Set((0..<shards).filter { scratch.exists("\(name)-\($0).running") })
    }

    /// The tokens member `name`'s commands were given, by shard (the latest per shard).
    static func tokens(_ scratch: Scratch, _ name: String) -> [Int: Int64] {
        var tokens: [Int: Int64] = [:]
        for line in scratch.read("\(name).env").split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 3, let shard = Int(fields[0]), let token = Int64(fields[1]) { tokens[shard] = token }
        }
        return tokens
    }

    @Test("--shards 4: one member runs all 4; a second takes 2 of them (stopped first); SIGTERM hands all to the other")
    func shardsMoveBetweenMembers() throws {
        let scratch = try Scratch()
        func member(_ name: String) -> [String] {
            scratch.store + ["run", "--key", "orders", "--shards", "4", "--id", name, "--ttl", "2s", "--"]
                + Self.shardCommand(name)
        }
        let a = try Baton(member("a"), in: scratch, name: "a")
        #expect(
            Self.waitUntil(.seconds(20)) { Self.running(scratch, "a", shards: 4) == [0, 1, 2, 3] }, "\(a.standardError)"
        )
        #expect(a.standardError.contains("waiting: for shards of orders (4 shards)"))
        let first = Self.tokens(scratch, "a")
        #expect(scratch.read("a.env").contains(" orders"), "BATON_KEY is the sharded key")

        let b = try Baton(member("b"), in: scratch, name: "b")
        #expect(
            Self.waitUntil(.seconds(20)) {
                Self.running(scratch, "a", shards: 4).count == 2 && Self.running(scratch, "b", shards: 4).count == 2
            }, "a: \(a.standardError)\nb: \(b.standardError)")
        let (aShards, bShards) = (Self.running(scratch, "a", shards: 4), Self.running(scratch, "b", shards: 4))
        #expect(aShards.isDisjoint(with: bShards))
        #expect(Self.waitUntil(.seconds(10)) { a.standardError.contains("moved: orders#shard-") }, "\(a.standardError)")
        // The shards b took have larger tokens than a's terms of them.
        let taken = Self.tokens(scratch, "b")
        for (shard, token) in taken {
            if let before = first[shard] { #expect(token > before, "shard \(shard): \(before) → \(token)") }
        }
        let (status, listing, _) = try Self.runToEnd(scratch.store + ["list", "orders#shard-"], in: scratch)
        #expect(status == 0)
        #expect(listing.components(separatedBy: "\n").filter { $0.contains(" a ") }.count == 2, "\(listing)")

        // SIGTERM: a's commands are stopped, its shards released, and b takes them.
        a.signal(SIGTERM)
        #expect(a.exit() == 128 + SIGTERM)
        #expect(Self.running(scratch, "a", shards: 4).isEmpty)
        #expect(
            Self.waitUntil(.seconds(20)) { Self.running(scratch, "b", shards: 4) == [0, 1, 2, 3] }, "\(b.standardError)"
        )
        b.signal(SIGTERM)
        #expect(b.exit() == 128 + SIGTERM)
        let (_, afterwards, _) = try Self.runToEnd(scratch.store + ["list", "orders#shard-"], in: scratch)
        #expect(!afterwards.contains("orders#shard-"), "shards still held after both members left: \(afterwards)")
    }

    @Test("a shard's command that exits ends the member with its status; the other commands are stopped")
    func aCommandsEndEndsTheMember() throws {
        let scratch = try Scratch()
        // Shard 1's command fails once every shard has started; the others run until stopped.
        let command = [
            "sh", "-c",
            "touch \"$DIR/m-$BATON_SHARD.running\"; trap 'rm -f \"$DIR/m-$BATON_SHARD.running\"; exit 0' TERM; "
                + "if [ \"$BATON_SHARD\" = 1 ]; then until [ -e \"$DIR/fail\" ]; do sleep 0.02; done; exit 3; fi; "
                + "while :; do sleep 0.02; done",
        ]
        let m = try Baton(
            scratch.store + ["run", "--key", "jobs", "--shards", "3", "--id", "m", "--ttl", "2s", "--"] + command,
            in: scratch, name: "m")
        #expect(
            Self.waitUntil(.seconds(20)) { Self.running(scratch, "m", shards: 3) == [0, 1, 2] }, "\(m.standardError)")
        _ = FileManager.default.createFile(atPath: scratch.path("fail"), contents: nil)
        #expect(m.exit() == 3)
        #expect(Self.running(scratch, "m", shards: 3) == [1], "shards 0 and 2 were stopped by SIGTERM")
        let (_, listing, _) = try Self.runToEnd(scratch.store + ["list", "jobs#shard-"], in: scratch)
        #expect(!listing.contains("jobs#shard-"), "\(listing)")
    }

    @Test(
        "another number of shards is refused while the key is in use; --shards with --round or --holders is a usage error"
    )
    func shardsAreFixedWhileInUse() throws {
        let scratch = try Scratch()
        let a = try Baton(
            scratch.store + ["run", "--key", "orders", "--shards", "2", "--id", "a", "--"] + Self.shardCommand("a"),
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { Self.running(scratch, "a", shards: 2) == [0, 1] }, "\(a.standardError)")
        let (refused, _, refusedError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "orders", "--shards", "3", "--id", "x", "--", "touch", "x.ran"],
            in: scratch)
        #expect(refused == 2)
        #expect(refusedError.contains("sharded key orders is in use with 2 shards (by a)"), "\(refusedError)")
        #expect(!scratch.exists("x.ran"))
        a.signal(SIGTERM)
        #expect(a.exit() == 128 + SIGTERM)

        for (extra, message) in [
            (["--round", "r"], "--shards has no meaning with --round"),
            (["--holders", "2"], "--shards and --holders cannot be used together"),
        ] {
            let (usage, _, usageError) = try Self.runToEnd(
                scratch.store + ["run", "--key", "k", "--shards", "2"] + extra + ["--", "true"], in: scratch)
            #expect(usage == 64)
            #expect(usageError.contains(message), "\(usageError)")
        }
        let (zero, _, zeroError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "k", "--shards", "0", "--", "true"], in: scratch)
        #expect(zero == 64)
        #expect(zeroError.contains("--shards must be within 1...1000, got 0"))
    }
}
