/// Which member should own each shard: the decision every member of a sharded key makes alike, with no I/O.
///
/// Given the members alive and the shards' current owners (as the store lists them), the plan
/// - is even: every member gets ⌊M/n⌋ or ⌈M/n⌉ of the M shards;
/// - moves as few shards as an even spread allows: the ⌈M/n⌉ places go to the members that own the most shards now,
///   each member keeps as many of its shards as its place allows, and only the rest move (those of members gone, and
///   a member's shards beyond its place);
/// - is stable: once the owners are the plan, the plan is the owners;
/// - is the same in every process: ties are broken by rendezvous scores of member and shard
///   (``StableHash/score(_:_:)``), never by the order of the input.
///
/// So a join moves ⌊M/n⌋ or fewer shards to the new member and none between the others; a leave moves only the
/// shards the member owned.
package enum ShardPlan {
    /// The owner each of `shards` shards should have.
    /// - Parameters:
    ///   - members: the members alive (duplicates are ignored); not empty.
    ///   - owners: the current owner of each shard (nil: free), `shards` long; owners that are not members count as
    ///     free.
    /// - Returns: a member for each shard.
    package static func assign(shards: Int, members: [String], owners: [String?]) -> [String] {
        precondition(!members.isEmpty && owners.count == shards)
        let members = Array(Set(members))
        let alive = Set(members)
        var owned: [String: [Int]] = [:]
        for (shard, owner) in owners.enumerated() {
            if let owner, alive.contains(owner) { owned[owner, default: []].append(shard) }
        }
        // The ⌈M/n⌉ places go to the members owning the most now, ties by their score for the key as a whole.
        let (base, extra) = shards.quotientAndRemainder(dividingBy: members.count)
        let ranked = members.sorted { a, b in
            let (ownedA, ownedB) = (owned[a]?.count ?? 0, owned[b]?.count ?? 0)
            if ownedA != ownedB { return ownedA > ownedB }
            return ranksBefore(a, b)
        }
        var room: [String: Int] = [:]
        for (rank, member) in ranked.enumerated() { room[member] = base + (rank < extra ? 1 : 0) }
        // Each member keeps its shards it scores highest, up to its place.
        var plan = [String?](repeating: nil, count: shards)
        for (member, shardsOwned) in owned {
            let kept = shardsOwned.sorted { keeps(member, $0, before: $1) }.prefix(room[member] ?? 0)
            for shard in kept { plan[shard] = member }
            room[member, default: 0] -= kept.count
        }
        // The rest go, highest score first, to members with room.
        var pairs: [(shard: Int, member: String, score: UInt64)] = []
        for shard in 0..<shards where plan[shard] == nil {
            for member in members where room[member, default: 0] > 0 {
                pairs.append((shard, member, StableHash.score(member, shard)))
            }
        }
        pairs.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.shard != b.shard { return a.shard < b.shard }
            return a.member.utf8.lexicographicallyPrecedes(b.member.utf8)
        }
        for pair in pairs where plan[pair.shard] == nil && room[pair.member, default: 0] > 0 {
            plan[pair.shard] = pair.member
            room[pair.member, default: 0] -= 1
        }
        return plan.map { $0! }
    }

    /// The number of shards owned by a member in `owners` and by another in `plan`: the moves the plan makes.
    package static func moves(from owners: [String?], to plan: [String], members: Set<String>) -> Int {
        zip(owners, plan).filter { owner, planned in owner.map { members.contains($0) && $0 != planned } ?? false }
            .count
    }

    /// Whether member `a` ranks before `b` for a place of ⌈M/n⌉ shards (when they own as many now).
    private static func ranksBefore(_ a: String, _ b: String) -> Bool {
        let (scoreA, scoreB) = (StableHash.score(a, -1), StableHash.score(b, -1))
        if scoreA != scoreB { return scoreA > scoreB }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Whether `member` keeps shard `a` before shard `b` when it must give some up.
    private static func keeps(_ member: String, _ a: Int, before b: Int) -> Bool {
        let (scoreA, scoreB) = (StableHash.score(member, a), StableHash.score(member, b))
        if scoreA != scoreB { return scoreA > scoreB }
        return a < b
    }
}
