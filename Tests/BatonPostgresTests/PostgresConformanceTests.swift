import Baton
import BatonPostgres
import BatonTestKit
import Testing

/// Every check of the conformance suite on a real PostgreSQL server (`BATON_TEST_POSTGRES_URL`, started by
/// `scripts/test`). Each check runs a store instance of its own, with its pool and its listening connection,
/// as separate processes would; all share one database.
@Suite struct PostgresConformanceTests {
    struct Harness: StoreHarness {
        let store: LeaseStore
        /// A second store instance on the same database, with its own pool and listener.
        let other: LeaseStore
        func makeStore() async throws -> LeaseStore { store }
        func makeOtherInstance() async throws -> LeaseStore { other }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // Long enough that a few store calls fit into a fraction of it even on a loaded two-core machine.
        var ttl: Duration { .seconds(1) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformance(_ check: ConformanceCheck) async throws {
        guard let store = try TestServer.store(), let second = try TestServer.store() else { return }
        try await usingAll([LeaseStore(store), LeaseStore(second)]) { stores in
            await #expect(throws: Never.self) { try await check.run(Harness(store: stores[0], other: stores[1])) }
        }
    }
}
