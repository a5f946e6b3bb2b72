import BatonTestKit
import Foundation
import Synchronization
import Testing

@testable import Baton

/// The fencing guards of the core: ``TokenFence`` in memory and ``FencedLedger`` in a file. In each, a leader whose
/// term ended while it was paused writes late with its old token after the next leader wrote; the guard refuses it
/// and changes nothing, and the same writes without the guard are all taken.
@Suite("Fencing at the resource")
struct FencingTests {
    /// Two real terms of one key: the first expires while its leader is paused, the second starts after it.
    func twoTerms(key: String) async throws -> (FencingToken, FencingToken) {
        let clock = ManualClock()
        let store = LeaseStore(MemoryLeaseStore(clock: clock))
        let old = try #require(try await store.acquire(key: key, holder: "paused", ttl: .seconds(1)).lease)
        clock.advance(by: .seconds(2))
        let new = try #require(try await store.acquire(key: key, holder: "next", ttl: .seconds(1)).lease)
        #expect(new.token > old.token)
        return (old.token, new.token)
    }

    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("baton-ledger-\(UUID().uuidString)").path
    }

    func removeLedger(_ path: String) {
        for suffix in ["", ".lock", ".tmp"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    @Test("a file ledger refuses a paused leader's late write and keeps the file; a plain file takes it")
    func ledgerRefusesTheLateWrite() async throws {
        let (old, new) = try await twoTerms(key: "cleaner")
        let path = temporaryPath()
        defer { removeLedger(path) }
        let ledger = FencedLedger(path: path)
        #expect(try ledger.read() == FencedLedger.Contents())
        try ledger.append("job 1 done", token: old, resource: "cleaner")
        try ledger.append("job 2 done", token: new, resource: "cleaner")
        let before = try String(contentsOfFile: path, encoding: .utf8)
        #expect(throws: StaleFencingToken(resource: "cleaner", token: old, highest: new)) {
            try ledger.append("job 2 done again", token: old, resource: "cleaner")
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == before, "the refused write changed the file")
        // The same term writes on; another resource's tokens are not compared.
        try ledger.append("job 3 done", token: new, resource: "cleaner")
        try ledger.append("shard 1: job 1 done", token: old, resource: "cleaner#shard-1")
        let contents = try FencedLedger(path: path).read()
        #expect(contents.highest == ["cleaner": new, "cleaner#shard-1": old])
        #expect(
            contents.records.map(\.text) == ["job 1 done", "job 2 done", "job 3 done", "shard 1: job 1 done"])
        #expect(contents.records.map(\.token) == [old, new, new, old])

        // The control: the same writes appended to a plain file are all taken, the late one too.
        let plain = temporaryPath()
        defer { removeLedger(plain) }
        #expect(FileManager.default.createFile(atPath: plain, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: plain))
        for (text, token) in [("job 1 done", old), ("job 2 done", new), ("job 2 done again", old)] {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("\(token) \(text)\n".utf8))
        }
        try handle.close()
        #expect(try String(contentsOfFile: plain, encoding: .utf8).contains("\(old) job 2 done again"))
    }

    @Test("writers racing on one ledger see one history: every accepted token at least the ones before")
    func concurrentWriters() async throws {
        let path = temporaryPath()
        defer { removeLedger(path) }
        let refused = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for round in 1...25 {
                        let token = FencingToken(round * 4 + writer)
                        do {
                            try FencedLedger(path: path).append("w\(writer) r\(round)", token: token, resource: "k")
                        } catch is StaleFencingToken {
                            refused.add()
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let contents = try FencedLedger(path: path).read()
        let tokens = contents.records.map(\.token)
        #expect(tokens == tokens.sorted(), "a lower token was accepted after a higher one")
        #expect(tokens.count + refused.value == 100, "a write was lost")
        #expect(contents.highest["k"] == tokens.last)
    }

    @Test("bad input is refused before the file is touched, and a file that is not a ledger is named")
    func badInput() throws {
        let path = temporaryPath()
        defer { removeLedger(path) }
        let ledger = FencedLedger(path: path)
        for (text, resource) in [("a\tb", "k"), ("a\nb", "k"), ("ok", "k\tj"), ("ok", "")] {
            #expect(throws: BatonError.self) { try ledger.append(text, token: 1, resource: resource) }
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        try "something else\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            try ledger.append("ok", token: 1, resource: "k")
        } throws: { error in
            (error as? FencedLedger.FileError)?.description.contains("is not a fenced ledger") == true
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "something else\n")
        try "baton-fenced-ledger 1\nhighest\tk\tnot-a-number\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            try ledger.read()
        } throws: { error in
            (error as? FencedLedger.FileError)?.description.contains("line 2 is malformed") == true
        }
    }

    @Test("a token fence admits a term's token again and refuses a lower one, per resource")
    func tokenFenceAdmits() async throws {
        let (old, new) = try await twoTerms(key: "billing")
        let fence = TokenFence()
        #expect(fence.highest(for: "billing") == nil)
        try fence.admit(old, for: "billing")
        try fence.admit(new, for: "billing")
        try fence.admit(new, for: "billing")
        #expect(throws: StaleFencingToken(resource: "billing", token: old, highest: new)) {
            try fence.admit(old, for: "billing")
        }
        try fence.admit(old, for: "billing#0")
        #expect(fence.highest(for: "billing") == new)
        #expect(fence.highest(for: "billing#0") == old)
    }

    @Test("admissions of one resource run one at a time: a newer write waits until an older one's write is done")
    func tokenFenceSerializesAResource() async throws {
        let fence = TokenFence()
        let olderWriting = AsyncStream<Void>.makeStream()
        let finishOlder = AsyncStream<Void>.makeStream()
        let events = Events()
        // An older term's write, admitted first, is slow.
        let older = Task {
            try await fence.withAdmission(1, for: "r") {
                events.add("older starts")
                olderWriting.continuation.yield()
                for await _ in finishOlder.stream { break }
                events.add("older ends")
            }
        }
        var writing = olderWriting.stream.makeAsyncIterator()
        await writing.next()
        // Another resource is admitted at once; the newer term's write waits for the older one to finish, so the
        // older write can never land after it.
        try await fence.withAdmission(1, for: "other") { events.add("other") }
        let newer = Task { try await fence.withAdmission(2, for: "r") { events.add("newer") } }
        for _ in 0..<100_000 where fence.waitingCount(for: "r") == 0 && !events.all.contains("newer") {
            await Task.yield()
        }
        #expect(fence.waitingCount(for: "r") == 1, "the newer write did not wait")
        #expect(events.all == ["older starts", "other"])
        finishOlder.continuation.finish()
        try await older.value
        try await newer.value
        #expect(events.all == ["older starts", "other", "older ends", "newer"])
        #expect(fence.waitingCount(for: "r") == 0)
        // A late write of the older term after that is refused, without running.
        await #expect(throws: StaleFencingToken(resource: "r", token: 1, highest: 2)) {
            try await fence.withAdmission(1, for: "r") { events.add("late") }
        }
        #expect(!events.all.contains("late"))
    }
}

private final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}

private final class Events: Sendable {
    private let events = Mutex<[String]>([])
    var all: [String] { events.withLock { $0 } }
    func add(_ event: String) { events.withLock { $0.append(event) } }
}
