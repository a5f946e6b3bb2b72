import Baton
import BatonSQLite
import BatonTestKit
import Foundation
import Testing

/// Every check of the conformance suite on the SQLite store: all checks share one database file, each with a
/// running store instance (a connection and a change watcher) of its own, as separate processes on one host would.
@Suite struct SQLiteConformanceTests {
    static let directory: URL = {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("baton-sqlite-conformance-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }()

    struct Harness: StoreHarness {
        let store: LeaseStore
        /// A second store instance on the same file, with its own connection and change watcher (only for the
        /// checks that use one).
        let other: LeaseStore?
        func makeStore() async throws -> LeaseStore { store }
        func makeOtherInstance() async throws -> LeaseStore {
            guard let other else { throw ConformanceFailure("this check was run without a second store") }
            return other
        }
        func elapse(_ duration: Duration) async throws { try await Task.sleep(for: duration) }
        // Long enough that a few store calls fit into a fraction of it even on a loaded two-core machine.
        var ttl: Duration { .seconds(1) }
    }

    @Test(arguments: LeaseStoreConformance.checks)
    func conformance(_ check: ConformanceCheck) async throws {
        let path = Self.directory.appendingPathComponent("shared.db").path
        try await LeaseStore(try SQLiteLeaseStore(path: path)).withRunning { store in
            // Only the replica checks open the file a second time: thirty more instances setting up one fresh file
            // at once would wait out each other's locks.
            guard check.name.hasPrefix("replicas:") else {
                await #expect(throws: Never.self) { try await check.run(Harness(store: store, other: nil)) }
                return
            }
            // Opened after the first instance has set the file up.
            _ = try await store.current(key: "baton-conformance-setup")
            try await LeaseStore(try SQLiteLeaseStore(path: path)).withRunning { other in
                await #expect(throws: Never.self) { try await check.run(Harness(store: store, other: other)) }
            }
        }
    }
}
