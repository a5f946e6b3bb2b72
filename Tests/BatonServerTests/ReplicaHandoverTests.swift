import Baton
import BatonRedis
import BatonServer
import BatonTestKit
import Foundation
import Synchronization
import Testing

/// A client of several replicas of the service asks through any of them. A term handed to it by a release, which it
/// then took and released through another replica, must not be granted again by a replica whose store still holds
/// the release's message (its connections silent, or its reader behind).
@Suite("HTTP service: a handed term and replicas")
struct ReplicaHandoverTests {
    @Test("a replica cut off from Redis does not grant a term its client took and released through another")
    func staleHandoverIsNotGrantedByTheService() async throws {
        guard let url = try RealServer.require("BATON_TEST_REDIS_URL"),
            let port = Int(url.split(separator: ":").last?.split(separator: "/").first ?? "")
        else { return }
        let proxy = try BlackholeProxy(forwardingTo: "127.0.0.1", port: port)
        defer { proxy.close() }
        // This replica's store, as `baton serve` opens one (holders that ask through it only, by default).
        let replica = LeaseStore(
            try RedisLeaseStore("redis://127.0.0.1:\(proxy.port)"), configuration: .init(requestTimeout: .seconds(1)))
        let other = LeaseStore(try RedisLeaseStore(url))
        try await replica.withRunning { replica in
            try await other.withRunning { other in
                let key = unique("replica-handover")
                let ttl = Duration.seconds(30)
                let leader = try #require(try await other.acquire(key: key, holder: "l", ttl: ttl).lease)
                // x waited through this replica's store, y through the other.
                #expect(try await replica.acquire(key: key, holder: "x", ttl: ttl, waiting: true).lease == nil)
                #expect(try await other.acquire(key: key, holder: "y", ttl: ttl, waiting: true).lease == nil)
                let seen = Mutex<[String]>([])
                let follower = Task {
                    for try await info in try replica.changes(key: key) {
                        seen.withLock { $0.append(info?.holder ?? "-") }
                    }
                }
                defer { follower.cancel() }
                try #require(try await eventually { seen.withLock { $0.last == "l" } }, "the replica never saw l")
                try await other.release(leader)
                try #require(try await eventually { seen.withLock { $0.last == "x" } }, "the replica never saw x")
                // The replica is cut off; x takes its term through the other replica and releases it; y leads.
                proxy.setMode(.blackhole)
                let taken = try #require(try await other.acquire(key: key, holder: "x", ttl: ttl, waiting: true).lease)
                try await other.release(taken)
                let y = try #require(try await other.acquire(key: key, holder: "y", ttl: ttl, waiting: true).lease)
                // x long-polls through the replica: the service must not answer with x's old term.
                try await makeServer(store: replica).test(.router) { client in
                    let answer = try await client.post(
                        "/v2/leases/\(key)", json(["holder": "x", "ttl_ms": 30_000, "wait_ms": 200]))
                    #expect(answer.status != 200, "the replica granted \(answer) while y leads with token \(y.token)")
                }
                proxy.setMode(.pass)
            }
        }
    }
}
