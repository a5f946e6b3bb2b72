import Baton
import Foundation
import Testing

@testable import BatonSQLite

@Suite struct SQLiteValidationTests {
    @Test func malformedArgumentsAreRefused() async throws {
        try await withTwoStores { store, _ throws in
            let long = String(repeating: "k", count: 257)
            let lease = Lease(key: "k", holder: "h", token: 1, ttl: .seconds(1))
            var badLease = lease
            badLease.holder = "tab\there"
            let checks: [(String, () async throws -> Void)] = [
                ("empty key", { _ = try await store.acquire(key: "", holder: "h", ttl: .seconds(1)) }),
                ("long key", { _ = try await store.acquire(key: long, holder: "h", ttl: .seconds(1)) }),
                ("control holder", { _ = try await store.acquire(key: "k", holder: "a\u{7}", ttl: .seconds(1)) }),
                ("zero ttl", { _ = try await store.acquire(key: "k", holder: "h", ttl: .zero) }),
                ("long ttl", { _ = try await store.acquire(key: "k", holder: "h", ttl: .seconds(400 * 86400)) }),
                (
                    "big metadata",
                    {
                        _ = try await store.acquire(
                            key: "k", holder: "h", ttl: .seconds(1),
                            metadata: String(repeating: "m", count: 4097))
                    }
                ),
                ("renew ttl", { _ = try await store.renew(lease, ttl: .milliseconds(-5)) }),
                ("renew lease", { _ = try await store.renew(badLease, ttl: .seconds(1)) }),
                ("release lease", { try await store.release(badLease) }),
                ("current key", { _ = try await store.current(key: "") }),
                ("claim system", { _ = try await store.claim(system: "", round: "r", candidate: "c") }),
                (
                    "claim retention",
                    {
                        _ = try await store.claim(system: "s", round: "r", candidate: "c", retention: .zero)
                    }
                ),
                ("winner round", { _ = try await store.winner(system: "s", round: long) }),
                ("complete completer", { try await store.complete(system: "s", round: "r", by: .anonymous("")) }),
                ("completion system", { _ = try await store.completion(system: "\n", round: "r") }),
                ("heartbeat ttl", { try await store.heartbeat(group: "g", member: "m", ttl: .zero) }),
                ("leave member", { try await store.leave(group: "g", member: "") }),
                ("members group", { _ = try await store.members(group: long) }),
            ]
            for (name, check) in checks {
                #expect(await batonErrorCode(check) == .invalidArgument, "\(name)")
            }
            // Nothing was written by the refused calls.
            #expect(try await store.current(key: "k") == nil)
            #expect(try await store.winner(system: "s", round: "r") == nil)
            #expect(try await store.members(group: "g") == [])
        }
    }

    @Test func badPathsAndConfigurationsAreRefusedBeforeOpening() async throws {
        try await withDatabase { path throws in
            for bad in ["", ":memory:", "file:\(path)?mode=ro"] {
                #expect(await batonErrorCode { _ = try SQLiteLeaseStore(path: bad) } == .invalidArgument)
            }
            let negative = SQLiteLeaseStore.Configuration(busyTimeout: .seconds(-1))
            #expect(
                await batonErrorCode { _ = try SQLiteLeaseStore(path: path, configuration: negative) }
                    == .invalidArgument)
            let noPoll = SQLiteLeaseStore.Configuration(changesPollInterval: .zero)
            #expect(
                await batonErrorCode { _ = try SQLiteLeaseStore(path: path, configuration: noPoll) }
                    == .invalidArgument)
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }
}
