@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO
import Synchronization

extension PostgresLeaseStore {
    /// Marks `member` of `group` alive for `ttl` by the server's clock (one upsert).
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        let query = schema.heartbeat(group: group, member: member, ttlMilliseconds: Self.milliseconds(ttl))
        try await perform("heartbeat of \(member) in \(group)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
        try await sweepIfDue()
    }

    /// Removes `member` from `group` at once.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leave(group: String, member: String) async throws {
        let query = schema.leave(group: group, member: member)
        try await perform("leave of \(member) from \(group)") { connection, logger in
            try await connection.query(query, logger: logger).collect().count
        }
    }

    /// The members of `group` whose last heartbeat has not expired, sorted as Swift sorts strings.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func members(group: String) async throws -> [String] {
        let query = schema.members(group: group)
        let members = try await perform("members of \(group)") { connection, logger in
            var members: [String] = []
            for try await member in try await connection.query(query, logger: logger).decode(String.self) {
                members.append(member)
            }
            return members
        }
        return members.sorted()
    }

    /// Deletes expired round and presence rows, at most once per ``sweepInterval`` per instance.
    func sweepIfDue() async throws {
        let now = clock.now()
        let due = state.withLock { state -> Bool in
            if let last = state.lastSweep, now - last < Self.sweepInterval { return false }
            state.lastSweep = now
            return true
        }
        guard due else { return }
        let queries = schema.sweep
        try await perform("sweep of expired rounds and heartbeats") { connection, logger in
            for query in queries { try await connection.query(query, logger: logger) }
            return 0
        }
    }
}
