import Baton
import Synchronization

/// Sharded leadership end to end on a real store: members of a key of `shards` shards, spread over the given store
/// instances (standing for processes), joining and leaving while every owned shard's work runs.
///
/// Three members start and reach an even spread with every shard worked; a fourth joins, and the spread is even
/// again after moving only the shards the new member needed; a member asking for another number of shards is
/// refused; one member leaves gracefully and its shards, and only those, move to the others; at the end every shard
/// is free. Checked throughout: never two members working on one shard, and every shard's tokens rising from term to
/// term (a member whose release failed may take up the same term again). Throws a ``ConformanceFailure`` naming what went wrong; each wait is bounded by `timeout` of real time.
public enum ShardScenario {
    /// What the shards' bodies saw, recorded under a lock as they enter and leave.
    final class Ledger: Sendable {
        struct State {
            var owner: [Int: String] = [:]
            var lastOwner: [Int: String] = [:]
            var lastToken: [Int: FencingToken] = [:]
            var moves = 0
            /// The moves, as `shard: from → to (token)`, for messages.
            var history: [String] = []
            var violations: [String] = []

            /// How many shards each member works on now.
            func spread(_ members: [String]) -> [String: Int] {
                var counts = Dictionary(uniqueKeysWithValues: members.map { ($0, 0) })
                for owner in owner.values { counts[owner, default: 0] += 1 }
                return counts
            }
        }

        let state = Mutex(State())

        func enter(_ shard: Shard, holder: String) {
            state.withLock { state in
                if let other = state.owner[shard.index] {
                    state.violations.append("\(holder) and \(other) worked on shard \(shard.index) at once")
                }
                state.owner[shard.index] = holder
                // Equal only for a member taking up its own term again (its release was not answered: the same
                // term, not a new one).
                if let last = state.lastToken[shard.index],
                    shard.token < last || (shard.token == last && state.lastOwner[shard.index] != holder)
                {
                    state.violations.append(
                        "shard \(shard.index)'s token went from \(last) (\(state.lastOwner[shard.index] ?? "?")) to "
                            + "\(shard.token) (\(holder))")
                }
                state.lastToken[shard.index] = shard.token
                if let last = state.lastOwner[shard.index], last != holder {
                    state.moves += 1
                    state.history.append("\(shard.index): \(last) → \(holder) (\(shard.token))")
                }
                state.lastOwner[shard.index] = holder
            }
        }

        func leave(_ shard: Shard, holder: String) {
            state.withLock { state in
                if state.owner[shard.index] == holder { state.owner[shard.index] = nil }
            }
        }
    }

    /// Runs the scenario.
    public static func run(
        stores: [LeaseStore],
        shards: Int = 12,
        ttl: Duration = .seconds(5),
        timeout: Duration = .seconds(60)
    ) async throws {
        precondition(!stores.isEmpty)
        let key = Conformance.unique("sharded")
        // A release slow under load (a loaded CI machine) still lands before the check that everything was released.
        let configuration = ElectorConfiguration(ttl: ttl, releaseTimeout: ttl)
        let ledger = Ledger()
        let members = try (0..<4).map { index in
            try ShardedElector(
                store: stores[index % stores.count], key: key, holder: "m\(index)", shards: shards,
                configuration: configuration)
        }
        var tasks: [Task<Void, any Error>] = []
        func start(_ member: ShardedElector) {
            tasks.append(
                Task {
                    try await member.withShards { shard in
                        ledger.enter(shard, holder: member.holder)
                        defer { ledger.leave(shard, holder: member.holder) }
                        while !Task.isCancelled { try await Task.sleep(for: .milliseconds(20)) }
                    }
                })
        }
        defer { for task in tasks { task.cancel() } }

        for member in members.prefix(3) { start(member) }
        try await waitForEvenSpread(ledger, members: ["m0", "m1", "m2"], shards: shards, timeout: timeout)
        let movesBefore = ledger.state.withLock { $0.moves }

        // A join moves only what the new member needs: ⌊M/4⌋ shards (for 12 shards, 3).
        start(members[3])
        try await waitForEvenSpread(ledger, members: ["m0", "m1", "m2", "m3"], shards: shards, timeout: timeout)
        let (joinMoves, joinHistory) = ledger.state.withLock { ($0.moves - movesBefore, $0.history) }
        try expect(
            joinMoves == shards / 4,
            "a fourth member's join moved \(joinMoves) shards; \(shards / 4) had to move (moves: \(joinHistory))")

        try await refusesAnotherNumber(stores[0], key: key, shards: shards, configuration: configuration)

        // A graceful leave moves only the leaving member's shards.
        let leaving = ledger.state.withLock { $0.spread(["m1"])["m1"] ?? 0 }
        let movesBeforeLeave = ledger.state.withLock { $0.moves }
        tasks[1].cancel()
        _ = await tasks[1].result
        try await waitForEvenSpread(ledger, members: ["m0", "m2", "m3"], shards: shards, timeout: timeout)
        let (leaveMoves, leaveHistory) = ledger.state.withLock { ($0.moves - movesBeforeLeave, $0.history) }
        try expect(
            leaveMoves == leaving,
            "m1's graceful leave moved \(leaveMoves) shards; it owned \(leaving) (moves: \(leaveHistory))")

        for task in tasks { task.cancel() }
        for task in tasks {
            if case .failure(let error) = await task.result, !(error is CancellationError) { throw error }
        }
        let state = ledger.state.withLock { $0 }
        try expect(state.violations.isEmpty, state.violations.prefix(5).joined(separator: "; "))
        for (index, shardKey) in members[0].shardKeys.enumerated() {
            let left = try await stores[0].current(key: shardKey)
            try expect(left == nil, "shard \(index) is still held after every member left: \(String(describing: left))")
        }
        let stillMembers = try await members[0].members()
        try expect(stillMembers.isEmpty, "members still announced after every member left: \(stillMembers)")
    }

    /// Waits until every shard is worked on and each of `members` works on ⌊M/n⌋ or ⌈M/n⌉ of them.
    static func waitForEvenSpread(_ ledger: Ledger, members: [String], shards: Int, timeout: Duration) async throws {
        let started = ContinuousClock.now
        var last: [String: Int] = [:]
        while ContinuousClock.now - started < timeout {
            let (spread, worked, violations) = ledger.state.withLock {
                ($0.spread(members), $0.owner.count, $0.violations)
            }
            try expect(violations.isEmpty, violations.prefix(5).joined(separator: "; "))
            last = spread
            let counts = spread.values
            if worked == shards, spread.count == members.count, let low = counts.min(), let high = counts.max(),
                high - low <= 1
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ConformanceFailure(
            "the shards were not spread evenly over \(members) within \(timeout): \(last.sorted { $0.key < $1.key })")
    }

    /// Checks that a member asking for `shards + 1` shards is refused while the key is in use.
    static func refusesAnotherNumber(
        _ store: LeaseStore, key: String, shards: Int, configuration: ElectorConfiguration
    ) async throws {
        let other = try ShardedElector(
            store: store, key: key, holder: "other-number", shards: shards + 1, configuration: configuration)
        do {
            try await other.withShards { _ in }
            throw ConformanceFailure("a member asking for \(shards + 1) shards of a key of \(shards) took part")
        } catch let error as BatonError where error.code == .invalidArgument {
            try expect(error.message.contains("in use with \(shards) shards"), "the refusal says: \(error.message)")
        }
    }
}
