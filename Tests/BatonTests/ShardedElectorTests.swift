import BatonTestKit
import Synchronization
import Testing

@testable import Baton

/// The plan of sharded leadership: even, with as few moves as an even spread needs, stable, and the same whatever the
/// order of its input.
@Suite struct ShardPlanTests {
    /// Names that vary in length and characters, from a seed.
    func names(_ count: Int, _ random: inout SeededRandom) -> [String] {
        (0..<count).map { index in "host-\(random.next() % 1000)-\(index)" }
    }

    func counts(_ plan: [String], _ members: [String]) -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: members.map { ($0, 0) })
        for owner in plan { counts[owner, default: 0] += 1 }
        return counts
    }

    @Test("every plan is even, and only members own shards")
    func even() {
        var random = SeededRandom(seed: 1)
        for _ in 0..<300 {
            let shards = Int(random.next() % 40) + 1
            let members = names(Int(random.next() % 9) + 1, &random)
            let owners: [String?] = (0..<shards).map { _ in
                random.next() % 3 == 0 ? nil : "host-\(random.next() % 1000)-\(random.next() % 10)"
            }
            let plan = ShardPlan.assign(shards: shards, members: members, owners: owners)
            let spread = counts(plan, members).values
            #expect(spread.max()! - spread.min()! <= 1, "\(shards) shards over \(members.count): \(spread)")
            #expect(Set(plan).isSubset(of: Set(members)))
        }
    }

    @Test("a plan followed is kept: the owners being the plan, the plan is the owners")
    func stable() {
        var random = SeededRandom(seed: 2)
        for _ in 0..<300 {
            let shards = Int(random.next() % 40) + 1
            let members = names(Int(random.next() % 9) + 1, &random)
            let plan = ShardPlan.assign(
                shards: shards, members: members, owners: .init(repeating: nil, count: shards))
            #expect(ShardPlan.assign(shards: shards, members: members, owners: plan) == plan)
        }
    }

    @Test("the plan does not depend on the order of the members")
    func orderFree() {
        var random = SeededRandom(seed: 3)
        for _ in 0..<200 {
            let shards = Int(random.next() % 40) + 1
            let members = names(Int(random.next() % 9) + 1, &random)
            let owners: [String?] = (0..<shards).map { _ in
                random.next() % 2 == 0 ? nil : members[Int(random.next() % UInt64(members.count))]
            }
            let plan = ShardPlan.assign(shards: shards, members: members, owners: owners)
            #expect(ShardPlan.assign(shards: shards, members: members.reversed(), owners: owners) == plan)
            #expect(ShardPlan.assign(shards: shards, members: members + members, owners: owners) == plan)
        }
    }

    @Test("a join moves only the shards the new member gets, a leave only the leaving member's")
    func fewestMoves() {
        var random = SeededRandom(seed: 4)
        for _ in 0..<300 {
            let shards = Int(random.next() % 60) + 1
            let members = names(Int(random.next() % 8) + 1, &random)
            let before = ShardPlan.assign(
                shards: shards, members: members, owners: .init(repeating: nil, count: shards))
            // A join.
            let joined = members + ["joiner-\(random.next())"]
            let afterJoin = ShardPlan.assign(shards: shards, members: joined, owners: before)
            let joinMoves = ShardPlan.moves(from: before, to: afterJoin, members: Set(joined))
            #expect(joinMoves == shards / joined.count, "\(shards) shards, \(members.count) → \(joined.count)")
            #expect(counts(afterJoin, joined)[joined.last!] == joinMoves)
            // A leave (or a crash: the same to the plan).
            guard members.count > 1 else { continue }
            let leaver = members[Int(random.next() % UInt64(members.count))]
            let remaining = members.filter { $0 != leaver }
            let afterLeave = ShardPlan.assign(shards: shards, members: remaining, owners: before)
            let moved = zip(before, afterLeave).filter { $0 != $1 }
            #expect(moved.allSatisfy { $0.0 == leaver }, "only \(leaver)'s shards move")
            #expect(moved.count == before.filter { $0 == leaver }.count)
        }
    }

    @Test("4 → 5 → 4 → 3 members of 12 shards: each change moves the fewest shards an even spread allows")
    func theBenchmarkSequence() {
        let shards = 12
        var owners = ShardPlan.assign(
            shards: shards, members: ["a", "b", "c", "d"], owners: .init(repeating: nil, count: shards))
        var moves: [Int] = []
        for members in [["a", "b", "c", "d", "e"], ["a", "b", "d", "e"], ["a", "b", "e"]] {
            let next = ShardPlan.assign(shards: shards, members: members, owners: owners)
            moves.append(zip(owners, next).filter { $0 != $1 }.count)
            owners = next
        }
        // Join: the new member takes 2 (3,3,2,2,2); c leaves with 3 or 2; d's 3 go.
        #expect(moves[0] == 2)
        #expect(moves[1] == 2 || moves[1] == 3)
        #expect(moves[2] == 3)
    }
}

/// Sharded leadership on the memory store.
@Suite struct ShardedElectorTests {
    let configuration = ElectorConfiguration(ttl: .seconds(2))

    func memoryStore() -> LeaseStore { LeaseStore(MemoryLeaseStore()) }

    @Test("3 then 4 then 3 members of 12 shards: even spreads, fewest moves, never two owners, tokens rise")
    func joinAndLeave() async throws {
        try await ShardScenario.run(stores: [memoryStore()], shards: 12, ttl: configuration.ttl)
    }

    @Test("the shards a member owns are streamed as they change, and all are released when it stops")
    func ownershipStream() async throws {
        let store = memoryStore()
        let member = try ShardedElector(
            store: store, key: "orders", holder: "a", shards: 3, configuration: configuration)
        #expect(member.shardKeys == ["orders#shard-0", "orders#shard-1", "orders#shard-2"])
        #expect(member.membersGroup == "orders#members")
        var ownership = member.ownership.makeAsyncIterator()
        #expect(await ownership.next() == [])
        let working = Task {
            try await member.withShards { shard in
                #expect(shard.timeLeft != nil)
                while !Task.isCancelled { try await Task.sleep(for: .milliseconds(10)) }
            }
        }
        var seen: Set<Int> = []
        while seen != [0, 1, 2] { seen = try #require(await ownership.next()) }
        #expect(try await member.members() == ["a"])
        #expect(try await member.owners().map { $0?.holder } == ["a", "a", "a"])
        working.cancel()
        _ = await working.result
        #expect(member.owned.isEmpty)
        #expect(try await member.owners().allSatisfy { $0 == nil })
        #expect(try await member.members().isEmpty)
    }

    @Test("a body that throws ends every shard's work and is rethrown after the shards are released")
    func bodyErrorEndsAll() async throws {
        struct Boom: Error {}
        let store = memoryStore()
        let member = try ShardedElector(
            store: store, key: "boom", holder: "a", shards: 4, configuration: configuration)
        await #expect(throws: Boom.self) {
            try await member.withShards { shard in
                if shard.index == 2 {
                    try await Task.sleep(for: .milliseconds(50))
                    throw Boom()
                }
                while !Task.isCancelled { try await Task.sleep(for: .milliseconds(10)) }
            }
        }
        #expect(try await member.owners().allSatisfy { $0 == nil })
        #expect(try await member.members().isEmpty)
    }

    @Test("a body that returns gives its shard back; the shard is taken again in a new term")
    func bodyReturnsTakesAgain() async throws {
        let store = memoryStore()
        let member = try ShardedElector(
            store: store, key: "again", holder: "a", shards: 1, configuration: configuration)
        let tokens = Mutex<[FencingToken]>([])
        let working = Task {
            try await member.withShards { shard in
                tokens.withLock { $0.append(shard.token) }
            }
        }
        #expect(try await eventually(timeout: .seconds(10)) { tokens.withLock { $0.count >= 3 } })
        working.cancel()
        _ = await working.result
        let seen = tokens.withLock { $0 }
        #expect(seen == seen.sorted() && Set(seen).count == seen.count, "tokens rise: \(seen)")
    }

    @Test("malformed input is refused with a clear error")
    func refusals() throws {
        let store = memoryStore()
        #expect(throws: BatonError.self) { try ShardedElector(store: store, key: "k", holder: "a", shards: 0) }
        #expect(throws: BatonError.self) { try ShardedElector(store: store, key: "k", holder: "a", shards: 1001) }
        do {
            _ = try ShardedElector(store: store, key: String(repeating: "k", count: 250), holder: "a", shards: 12)
            Issue.record("a key too long for its shard keys was accepted")
        } catch let error as BatonError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("#shard-N"), "\(error.message)")
        }
    }

    @Test("a second withShards of one instance is refused")
    func oneAtATime() async throws {
        let store = memoryStore()
        let member = try ShardedElector(
            store: store, key: "once", holder: "a", shards: 2, configuration: configuration)
        let working = Task {
            try await member.withShards { _ in
                while !Task.isCancelled { try await Task.sleep(for: .milliseconds(10)) }
            }
        }
        #expect(try await eventually(timeout: .seconds(10)) { member.owned.count == 2 })
        await #expect(throws: BatonError.self) { try await member.withShards { _ in } }
        working.cancel()
        _ = await working.result
    }
}
