/// Where a sharded key lives in a store: the key of each shard, and the presence group of its members. Shared by
/// ``ShardedElector``, `baton run --shards` and the HTTP service.
package struct ShardLayout: Sendable, Hashable {
    /// The largest number of shards.
    package static let maxShards = 1000

    /// The sharded key.
    package let key: String
    /// How many shards the key has.
    package let shards: Int
    /// The key of each shard: `KEY#shard-0` … `KEY#shard-M-1`.
    package let shardKeys: [String]
    /// The presence group of the members: `KEY#members`, each member `M:HOLDER`.
    package let membersGroup: String

    /// - Throws: ``BatonError`` `invalidArgument` for a malformed key, a number of shards out of range, or a key too
    ///   long for its shard keys and presence group.
    package init(key: String, shards: Int) throws(BatonError) {
        try BatonValidation.name(key, "key")
        guard (1...Self.maxShards).contains(shards) else {
            throw .invalidArgument("shards is \(shards); it must be 1–\(Self.maxShards)")
        }
        let prefix = Self.shardPrefix(key)
        let shardKeys = (0..<shards).map { "\(prefix)\($0)" }
        let membersGroup = "\(key)#members"
        do {
            try BatonValidation.name(shardKeys[shards - 1], "shard key")
            try BatonValidation.name(membersGroup, "members group")
        } catch {
            throw .invalidArgument(
                "key too long for a sharded key: \(error.message) (the shard keys add `#shard-N`, the presence "
                    + "group `#members` to the key)")
        }
        self.key = key
        self.shards = shards
        self.shardKeys = shardKeys
        self.membersGroup = membersGroup
    }

    /// What every shard key starts with: `KEY#shard-`.
    package static func shardPrefix(_ key: String) -> String { "\(key)#shard-" }

    /// The announcement of the number of shards in the members group (`M:HOLDER`).
    package var announcement: NumberAnnouncement {
        NumberAnnouncement(group: membersGroup, number: shards, noun: "shards", subject: "sharded key \(key)")
    }

    /// The shard of a listed key, if it is one of this layout's shard keys.
    package func shard(ofKey listed: String) -> Int? {
        let prefix = Self.shardPrefix(key)
        guard listed.hasPrefix(prefix) else { return nil }
        let digits = listed.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.utf8.allSatisfy({ (48...57).contains($0) }), digits.first != "0" || digits == "0",
            let shard = Int(digits), shard < shards
        else { return nil }
        return shard
    }

    /// The owner of each shard according to the store (one listing), nil for a free shard.
    package func owners(on store: LeaseStore) async throws -> [LeaderInfo?] {
        let listing = try await store.leases(prefix: Self.shardPrefix(key), limit: ListingLimits.maxLeases)
        var owners = [LeaderInfo?](repeating: nil, count: shards)
        for lease in listing.leases {
            if let shard = shard(ofKey: lease.key) { owners[shard] = lease.leader }
        }
        return owners
    }

    /// The members taking part now with this number of shards, sorted.
    package func members(on store: LeaseStore) async throws -> [String] {
        try await announcement.participants(on: store).sorted()
    }
}
