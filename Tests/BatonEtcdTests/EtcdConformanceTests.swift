import Baton
import BatonEtcd
import BatonTestKit
import Testing

/// Every check of the conformance suite against a real etcd, one store per check (so each has its own
/// connections, leases and watches, as separate processes would).
@Suite struct EtcdConformanceTests {
    struct Harness: StoreHarness {
        let store: EtcdLeaseStore
        func makeStore() async throws -> LeaseStore { LeaseStore(store) }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // etcd counts lease TTLs in whole seconds, and `scripts/test` starts it with a 150 ms minimum TTL.
        var ttl: Duration { .seconds(1) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformance(_ check: ConformanceCheck) async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        await #expect(throws: Never.self) { try await check.run(Harness(store: store)) }
        try await store.close()
    }
}
