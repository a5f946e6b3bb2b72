import Baton
import BatonTestKit
import Testing

@testable import BatonSQLite

@Suite struct SQLiteRoundsAndPresenceTests {
    @Test func firstClaimWinsAcrossInstances() async throws {
        try await withTwoStores { a, b throws in
            let system = unique("cleaner")
            #expect(try await a.claim(system: system, round: "r1", candidate: "a") == .won)
            #expect(try await b.claim(system: system, round: "r1", candidate: "b") == .lost(winner: "a"))
            #expect(try await b.claim(system: system, round: "r1", candidate: "a") == .won)
            #expect(try await b.winner(system: system, round: "r1") == "a")
            #expect(try await a.winner(system: system, round: "r2") == nil)
            #expect(try await b.claim(system: system, round: "r2", candidate: "b") == .won)
        }
    }

    @Test func completionRules() async throws {
        try await withTwoStores { a, b throws in
            let system = unique("job")
            _ = try await a.claim(system: system, round: "r", candidate: "a")
            #expect(
                await batonErrorCode { try await b.complete(system: system, round: "r", by: .candidate("b")) }
                    == .notWinner)
            #expect(try await b.completion(system: system, round: "r") == nil)
            try await a.complete(system: system, round: "r", by: .candidate("a"))
            try await b.complete(system: system, round: "r", by: .candidate("a"))
            #expect(try await b.completion(system: system, round: "r") == "a")
            #expect(
                await batonErrorCode { try await b.complete(system: system, round: "r", by: .anonymous("x")) }
                    == .alreadyCompleted)

            // Anonymous callers: the first completion is recorded, whoever won.
            try await b.complete(system: system, round: "unclaimed", by: .anonymous("10.0.0.9:4000"))
            #expect(try await a.completion(system: system, round: "unclaimed") == "10.0.0.9:4000")
            #expect(try await a.winner(system: system, round: "unclaimed") == nil)
        }
    }

    @Test func roundRecordsExpireAfterRetention() async throws {
        try await withTwoStores { a, b throws in
            let system = unique("short")
            let retention = Duration.milliseconds(200)
            #expect(try await a.claim(system: system, round: "r", candidate: "a", retention: retention) == .won)
            try await a.complete(system: system, round: "r", by: .candidate("a"), retention: retention)
            try await Task.sleep(for: .milliseconds(350))
            #expect(try await b.winner(system: system, round: "r") == nil)
            #expect(try await b.completion(system: system, round: "r") == nil)
            #expect(try await b.claim(system: system, round: "r", candidate: "b", retention: retention) == .won)
        }
    }

    @Test func presenceAcrossInstances() async throws {
        let clock = ManualClock()
        try await withTwoStores(clock: clock) { a, b throws in
            let group = unique("workers")
            try await a.heartbeat(group: group, member: "zeta", ttl: .seconds(10))
            try await b.heartbeat(group: group, member: "alpha", ttl: .seconds(10))
            try await b.heartbeat(group: group, member: "brief", ttl: .milliseconds(150))
            #expect(try await a.members(group: group) == ["alpha", "brief", "zeta"])
            clock.advance(by: .milliseconds(150))
            #expect(try await a.members(group: group) == ["alpha", "zeta"])
            try await a.leave(group: group, member: "zeta")
            #expect(try await b.members(group: group) == ["alpha"])
            // A heartbeat brings an expired member back.
            try await b.heartbeat(group: group, member: "brief", ttl: .seconds(10))
            #expect(try await a.members(group: group) == ["alpha", "brief"])
        }
    }

    @Test func presenceWrittenUnderAnotherBootIsExpired() async throws {
        try await withTwoStores { a, b throws in
            let group = unique("rebooted")
            try await a.heartbeat(group: group, member: "m1", ttl: .seconds(3600))
            try await a.heartbeat(group: group, member: "m2", ttl: .seconds(3600))
            try await a.sqlite.withSession("test") { db in
                try await db.execute(
                    "UPDATE baton_presence SET boot_id = 'another-boot' WHERE group_name = '\(group)' AND member = 'm1'"
                )
            }
            #expect(try await b.members(group: group) == ["m2"])
        }
    }
}
