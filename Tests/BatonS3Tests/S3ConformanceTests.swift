import Baton
import BatonS3
import BatonTestKit
import Testing

/// Every check of the conformance suite against the S3-compatible server, one store per check (so each has its
/// own connections and its own sightings, as separate processes would).
@Suite struct S3ConformanceTests {
    struct Harness: StoreHarness {
        let store: LeaseStore
        /// A second store on the same bucket and prefix, running for the whole check.
        let other: LeaseStore
        func makeStore() async throws -> LeaseStore { store }
        func makeOtherInstance() async throws -> LeaseStore { other }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // Twice Redis's 1 s: every check runs at once against one moto_server process (Python), and on a loaded
        // two-core machine a renew and two reads took more than half of a 1 s ttl.
        var ttl: Duration { .seconds(2) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformance(_ check: ConformanceCheck) async throws {
        guard let driver = try S3TestServer.store(), let second = try S3TestServer.store() else { return }
        try await withRunning([driver, second]) { stores in
            await #expect(throws: Never.self) { try await check.run(Harness(store: stores[0], other: stores[1])) }
        }
    }
}
