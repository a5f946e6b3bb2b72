import Foundation
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton run --holders N`: up to N commands at once, each in a slot with its own token; the number fixed while the
/// semaphore is in use; a stop signal while waiting for a slot.
extension RunCommandTests {
    /// A command for candidate `name`: records its slot, token and key, marks that it runs, and runs until
    /// `$DIR/<name>.release` appears.
    static func holderCommand(_ name: String) -> [String] {
        [
            "sh", "-c",
            "echo \"$BATON_SLOT $BATON_TOKEN $BATON_KEY\" > \"$DIR/\(name).env\"; touch \"$DIR/\(name).running\"; "
                + "until [ -e \"$DIR/\(name).release\" ]; do sleep 0.02; done; rm \"$DIR/\(name).running\"",
        ]
    }

    @Test("--holders 2: two commands run at once, each in its slot; the third starts in the slot freed")
    func twoHoldersAtOnce() throws {
        let scratch = try Scratch()
        var batons: [String: Baton] = [:]
        for name in ["a", "b", "c"] {
            batons[name] = try Baton(
                scratch.store + ["run", "--key", "k", "--holders", "2", "--id", name, "--ttl", "2s", "--"]
                    + Self.holderCommand(name),
                in: scratch, name: name)
            if name != "c" {
                #expect(Self.waitUntil(.seconds(20)) { scratch.exists("\(name).running") }, "\(name) did not run")
            }
        }
        let c = try #require(batons["c"])
        #expect(
            Self.waitUntil(.seconds(20)) { c.standardError.contains("waiting: for a slot of k (2 at once)") },
            "\(c.standardError)")
        // c says who holds the slots.
        #expect(
            Self.waitUntil(.seconds(20)) {
                let said = c.standardError
                return said.contains("waiting: the slots of k are held by ") && said.contains("a (slot ")
                    && said.contains("b (slot ")
            }, "\(c.standardError)")
        // c waits in both slots' queues: the slots are a's and b's, and both commands still run.
        for slot in ["k#0", "k#1"] {
            let (status, output, _) = try Self.runToEnd(scratch.store + ["leader", slot], in: scratch)
            #expect(status == 0 && (output.hasPrefix("a ") || output.hasPrefix("b ")), "\(slot): \(output)")
        }
        #expect(!scratch.exists("c.running"))
        let slots = try ["a", "b"].map { name -> (slot: String, token: String, key: String) in
            let fields = scratch.read("\(name).env").split(separator: " ").map(String.init)
            let parsed = try #require(fields.count == 3 ? (fields[0], fields[1], fields[2]) : nil, "\(fields)")
            return (parsed.0, parsed.1, parsed.2.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(Set(slots.map(\.slot)) == ["0", "1"])
        #expect(slots.allSatisfy { $0.key == "k" && Int64($0.token) != nil })

        // a's command ends: its slot goes to c at once; b runs on.
        _ = FileManager.default.createFile(atPath: scratch.path("a.release"), contents: nil)
        #expect(batons["a"]?.exit() == 0)
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("c.running") }, "\(c.standardError)")
        let cFields = scratch.read("c.env").split(separator: " ").map(String.init)
        #expect(cFields.first == slots[0].slot, "c took slot \(cFields.first ?? "?"), a had \(slots[0].slot)")
        if cFields.count == 3, let cToken = Int64(cFields[1]), let aToken = Int64(slots[0].token) {
            #expect(cToken > aToken, "the slot's token went from \(aToken) to \(cToken)")
        }
        #expect(scratch.exists("b.running"))
        for name in ["b", "c"] {
            _ = FileManager.default.createFile(atPath: scratch.path("\(name).release"), contents: nil)
            #expect(batons[name]?.exit() == 0)
        }
    }

    @Test("another number of holders is refused while the semaphore is in use; --holders with --round is a usage error")
    func holdersAreFixedWhileInUse() throws {
        let scratch = try Scratch()
        let a = try Baton(
            scratch.store + ["run", "--key", "pool", "--holders", "2", "--id", "a", "--"] + Self.holderCommand("a"),
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a.running") }, "\(a.standardError)")
        let (refused, _, refusedError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "pool", "--holders", "3", "--id", "x", "--", "touch", "x.ran"],
            in: scratch)
        #expect(refused == 2)
        #expect(refusedError.contains("semaphore pool is in use with 2 permits (by a)"), "\(refusedError)")
        #expect(!scratch.exists("x.ran"))
        _ = FileManager.default.createFile(atPath: scratch.path("a.release"), contents: nil)
        #expect(a.exit() == 0)

        let (usage, _, usageError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "k", "--holders", "2", "--round", "r", "--", "true"], in: scratch)
        #expect(usage == 64)
        #expect(usageError.contains("--holders has no meaning with --round"))
        let (zero, _, zeroError) = try Self.runToEnd(
            scratch.store + ["run", "--key", "k", "--holders", "0", "--", "true"], in: scratch)
        #expect(zero == 64)
        #expect(zeroError.contains("--holders must be within 1...1000, got 0"))
    }

    @Test("a stop signal while waiting for a slot leaves every slot's queue and runs nothing")
    func stopWhileWaitingForASlot() throws {
        let scratch = try Scratch()
        let a = try Baton(
            scratch.store + ["run", "--key", "k", "--holders", "1", "--id", "a", "--"] + Self.holderCommand("a"),
            in: scratch, name: "a")
        #expect(Self.waitUntil(.seconds(20)) { scratch.exists("a.running") }, "\(a.standardError)")
        let b = try Baton(
            scratch.store + ["run", "--key", "k", "--holders", "1", "--id", "b", "--"] + Self.holderCommand("b"),
            in: scratch, name: "b")
        #expect(Self.waitUntil(.seconds(20)) { b.standardError.contains("waiting: for a slot of k (1 at once)") })
        b.signal(SIGTERM)
        #expect(b.exit() == 128 + SIGTERM)
        #expect(!scratch.exists("b.env"))
        // b left the queue: a's release leaves the key free, not handed to b.
        _ = FileManager.default.createFile(atPath: scratch.path("a.release"), contents: nil)
        #expect(a.exit() == 0)
        let (status, output, _) = try Self.runToEnd(scratch.store + ["leader", "k"], in: scratch)
        #expect(status != 0 || !output.hasPrefix("b "), "the key went to the candidate that stopped: \(output)")
    }
}
