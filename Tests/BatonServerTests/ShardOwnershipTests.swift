import Baton
import BatonServer
import BatonTestKit
import Foundation
import Testing

/// `GET /v2/shards/{key}`: the members of a sharded key, each shard's owner and the plan, as library members see them.
@Suite("HTTP service: shard ownership")
struct ShardOwnershipTests {
    @Test("two library members of 4 shards: the answer lists both, each shard's owner, and a plan they follow")
    func ownershipOfLibraryMembers() async throws {
        let store = LeaseStore.memory()
        let configuration = ElectorConfiguration(ttl: .seconds(3))
        let members = try ["a", "b"].map { holder in
            try ShardedElector(store: store, key: "orders", holder: holder, shards: 4, configuration: configuration)
        }
        let working = members.map { member in
            Task {
                try await member.withShards { _ in
                    while !Task.isCancelled { try await Task.sleep(for: .milliseconds(10)) }
                }
            }
        }
        defer { for task in working { task.cancel() } }
        #expect(try await eventually(timeout: .seconds(20)) { members.allSatisfy { $0.owned.count == 2 } })
        try await makeServer(store: store).test(.router) { client in
            let answer = try await client.get("/v2/shards/orders")
            #expect(answer.status == 200, "\(answer)")
            let body = try answer.object()
            #expect(body["key"] as? String == "orders")
            #expect(body["shards"] as? Int == 4)
            #expect(body["members"] as? [String] == ["a", "b"])
            let owners = try #require(body["owners"] as? [[String: Any]])
            let holders = owners.map { $0["holder"] as? String }
            #expect(holders.filter { $0 == "a" }.count == 2 && holders.filter { $0 == "b" }.count == 2)
            // Settled: the plan is who owns each shard now.
            #expect(body["plan"] as? [String] == holders.compactMap { $0 })

            let asked = try await client.get("/v2/shards/orders?shards=4")
            #expect(try asked.object()["owners"] as? [[String: Any]] != nil)
        }
    }

    @Test("a key nobody takes part in: 404 without ?shards, free shards and no plan with it; bad numbers are 400")
    func noMembers() async throws {
        try await makeServer().test(.router) { client in
            let unknown = try await client.get("/v2/shards/nobody")
            #expect(unknown.status == 404)
            #expect(try unknown.object()["code"] as? String == "not_found")
            let empty = try await client.get("/v2/shards/nobody?shards=3")
            #expect(empty.status == 200)
            let body = try empty.object()
            #expect((body["owners"] as? [Any])?.count == 3)
            #expect(body["plan"] is NSNull)
            #expect(body["members"] as? [String] == [])
            for bad in ["0", "1001", "x", "-1", ""] {
                let answer = try await client.get("/v2/shards/nobody?shards=\(bad)")
                #expect(answer.status == 400, "shards=\(bad): \(answer)")
            }
            let long = String(repeating: "k", count: 250)
            let tooLong = try await client.get("/v2/shards/\(long)?shards=3")
            #expect(tooLong.status == 400)
            #expect((try tooLong.object()["error"] as? String)?.contains("#shard-N") == true)
        }
    }
}
