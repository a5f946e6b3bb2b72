import Baton
import BatonEtcd
import BatonTestKit
import Testing

/// Every check of the conformance suite against a real etcd, one store per check (so each has its own
/// connections, leases and watches, as separate processes would).
@Suite struct EtcdConformanceTests {
    struct Harness: StoreHarness {
        /// The store's front, running for the whole check.
        let store: LeaseStore
        /// A second store on the same etcd, running for the whole check (only for the checks that use one).
        let other: LeaseStore?
        func makeStore() async throws -> LeaseStore { store }
        func makeOtherInstance() async throws -> LeaseStore {
            guard let other else { throw ConformanceFailure("this check was run without a second store") }
            return other
        }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // etcd counts lease TTLs in whole seconds, and `scripts/test` starts it with a 150 ms minimum TTL.
        var ttl: Duration { .seconds(1) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformance(_ check: ConformanceCheck) async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = LeaseStore(try EtcdLeaseStore(url))
        // Only the replica checks get a second store: thirty more connections would slow every check's 1 s terms.
        guard check.name.hasPrefix("replicas:") else {
            await #expect(throws: Never.self) {
                try await store.withRunning { store in try await check.run(Harness(store: store, other: nil)) }
            }
            return
        }
        let other = LeaseStore(try EtcdLeaseStore(url))
        await #expect(throws: Never.self) {
            try await store.withRunning { store in
                try await other.withRunning { other in try await check.run(Harness(store: store, other: other)) }
            }
        }
    }
}
