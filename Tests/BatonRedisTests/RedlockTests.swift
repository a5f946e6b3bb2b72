import Baton
import BatonRedis
import BatonTestKit
import Testing

/// Redlock over three independent `redis-server`s: the whole conformance suite with all three up, and again with
/// the third node down (nothing listens on its port).
@Suite struct RedlockTests {
    struct Harness: StoreHarness {
        let store: LeaseStore
        /// A second store on the same nodes, with connections of its own, running for the whole check.
        let other: LeaseStore
        func makeStore() async throws -> LeaseStore { store }
        func makeOtherInstance() async throws -> LeaseStore { other }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // Longer than SQLite's 500 ms: three suites (one node, Redlock, Redlock with a node down) run their checks
        // at once on a two-core machine, and a few store calls must fit in a fraction of the ttl.
        var ttl: Duration { .seconds(1) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformanceWithThreeNodes(_ check: ConformanceCheck) async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDLOCK_URL") else { return }
        try await withRedisStore(url) { store, _ in
            try await withRedisStore(url) { other, _ in try await check.run(Harness(store: store, other: other)) }
        }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformanceWithOneNodeOfThreeDown(_ check: ConformanceCheck) async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDLOCK_DOWN_URL") else { return }
        try await withRedisStore(url) { store, _ in
            try await withRedisStore(url) { other, _ in try await check.run(Harness(store: store, other: other)) }
        }
    }

    /// A term is written to every live node with one token; with two of three nodes down nothing can be
    /// acquired, and the answer is `storeUnavailable`, not `held`.
    @Test func majorityIsRequired() async throws {
        guard let url = try RedisTestServer.url("BATON_TEST_REDLOCK_URL") else { return }
        let parsed = try StoreURL(url)
        try await withRedisStore(url) { store, _ in
            let key = unique("redlock")
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(30)).lease)
            for host in parsed.hosts {
                let leader = try await withRedisStore("redis://\(host)") { single, _ in
                    try await single.current(key: key)
                }
                #expect(
                    leader?.holder == "a" && leader?.token == lease.token,
                    "node \(host) has \(String(describing: leader))")
            }
            try await store.release(lease)

            let deadPorts = "redis://\(parsed.hosts[0]),127.0.0.1:1,127.0.0.1:2"
            try await withRedisStore(deadPorts) { minority, _ in
                await #expect {
                    _ = try await minority.acquire(key: key, holder: "b", ttl: .seconds(30))
                } throws: { error in
                    (error as? BatonError)?.code == .storeUnavailable
                }
            }
            // The grant on the one live node was released again.
            let left = try await withRedisStore("redis://\(parsed.hosts[0])") { single, _ in
                try await single.current(key: key)
            }
            #expect(left == nil)
        }
    }
}
