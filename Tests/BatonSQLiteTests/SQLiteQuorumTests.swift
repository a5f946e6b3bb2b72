import Baton
import BatonSQLite
import BatonTestKit
import Testing

/// Quorum mode on SQLite: two store instances on one file stand for two processes.
@Suite struct SQLiteQuorumTests {
    @Test func leaderStepsDownWithoutAQuorum() async throws {
        try await withTwoStores { first, second in
            await #expect(throws: Never.self) { try await QuorumScenario.run(first: first, second: second) }
        }
    }
}
