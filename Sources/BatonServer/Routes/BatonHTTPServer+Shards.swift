@_spi(BatonStoreKit) import Baton
import Hummingbird

/// v2: who owns which shard of a sharded key (the library's `ShardedElector`, `baton run --shards`; see
/// ``ShardLayout``).
extension BatonHTTPServer {
    /// `GET /v2/shards/{key}?shards=M`: 200 with the members taking part, each shard's owner (null when free) and the
    /// plan (the owner each shard is moving to, null when no member takes part). Without `shards`, the number the
    /// members announce; 404 when none is announced.
    @Sendable func shardOwnership(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let store = self.store
        let shards: Int
        if let number = try countQuery("shards", request, max: ShardLayout.maxShards) {
            shards = number
        } else {
            let probe = try shardLayout(key, shards: 1)
            let announced = try await withStore("members") {
                try await probe.announcement.announcedNumbers(on: store)
            }
            guard let number = announced.max() else {
                throw APIError.notFound("no member of a sharded key \(key) is taking part; give ?shards=M")
            }
            shards = number
        }
        let layout = try shardLayout(key, shards: shards)
        let members = try await withStore("members") { try await layout.members(on: store) }
        let owners = try await withStore("leases") { try await layout.owners(on: store) }
        let plan: JSONOutput =
            members.isEmpty
            ? .null
            : .array(
                ShardPlan.assign(shards: shards, members: members, owners: owners.map { $0?.holder }).map {
                    .string($0)
                })
        return .json(
            .ok,
            .object([
                ("key", .string(key)),
                ("shards", .integer(Int64(shards))),
                ("members", .array(members.map { .string($0) })),
                ("owners", Self.json(holders: owners)),
                ("plan", plan),
            ]))
    }

    private func shardLayout(_ key: String, shards: Int) throws(APIError) -> ShardLayout {
        do {
            return try ShardLayout(key: key, shards: shards)
        } catch {
            throw .badRequest(error.message)
        }
    }
}
