@_spi(BatonStoreKit) import Baton

extension RedisLeaseStore {
    /// How many keys one `SCAN` step asks for, and how many lease hashes one script reads.
    static let listingBatch = 500

    /// The live terms whose key starts with `prefix`, with their time left by the server's clock (`PTTL`).
    ///
    /// `SCAN` with `MATCH <prefix>:lease:<prefix>*` (the prefix's glob characters escaped; never `KEYS`), then one
    /// script per batch of found hashes reads their terms. With Redlock, a lease is listed where a majority of
    /// nodes hold the same term (holder and token), with the least time left among them, as
    /// ``current(key:)`` does. Every match is read, so a listing's cost grows with the leases under the prefix.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        let head = layout.lease("")
        let pattern = Self.globEscaped(head + prefix) + "*"
        if nodes.count == 1 { return try await leases(on: nodes[0], pattern: pattern, head: head) }
        let answers = await onEveryNode { node in try await self.leases(on: node, pattern: pattern, head: head) }
        var terms: [String: [String: [LeaderInfo]]] = [:]
        var answered = 0
        for case .success(let held) in answers {
            answered += 1
            for lease in held {
                terms[lease.key, default: [:]]["\(lease.leader.token) \(lease.leader.holder)", default: []]
                    .append(lease.leader)
            }
        }
        if answered < quorum { throw firstError(answers, "listing of \(prefix)*") }
        return terms.compactMap { key, byTerm in
            guard let agreed = byTerm.values.first(where: { $0.count >= quorum }) else { return nil }
            var leader = agreed[0]
            leader.remaining = agreed.compactMap(\.remaining).min()
            return HeldLease(key: key, leader: leader)
        }
    }

    /// The live terms on one node of the hashes matching `pattern`, keyed by the name after `head`.
    private func leases(on node: RedisNodeClient, pattern: String, head: String) async throws -> [HeldLease] {
        let found = try await scan(node, pattern: pattern)
        var held: [HeldLease] = []
        var start = 0
        while start < found.count {
            let batch = Array(found[start..<min(start + Self.listingBatch, found.count)])
            start += batch.count
            let reply = try await node.run(RedisScripts.currentMany, keys: batch, arguments: [])
            guard let entries = reply.elements, entries.count == batch.count else {
                throw unexpected(reply, "listing")
            }
            for (redisKey, entry) in zip(batch, entries) {
                guard let parts = entry.elements, !parts.isEmpty else { continue }
                guard let leader = leaderInfo(parts) else { throw unexpected(reply, "listing") }
                if let remaining = leader.remaining, remaining <= .zero { continue }
                let key = String(decoding: redisKey.utf8.dropFirst(head.utf8.count), as: UTF8.self)
                held.append(HeldLease(key: key, leader: leader))
            }
        }
        return held
    }

    /// The kept rounds of `system`: `SCAN` with `MATCH <prefix>:round:<n>:<system>:*` (escaped), then one `MGET`
    /// of the winner and completion records of the `limit` greatest round names.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        let head = String(layout.roundWinner(system, "").dropLast(":winner".count))
        let found = try await scan(nodes[0], pattern: Self.globEscaped(head) + "*")
        var names = Set<String>()
        for redisKey in found {
            let rest = redisKey.utf8.dropFirst(head.utf8.count)
            for suffix in [":winner", ":completed"] where rest.count > suffix.utf8.count {
                if rest.reversed().starts(with: suffix.utf8.reversed()) {
                    names.insert(String(decoding: rest.dropLast(suffix.utf8.count), as: UTF8.self))
                    break
                }
            }
        }
        let chosen = Array(names.sorted { ListingLimits.precedes($1, $0) }.prefix(limit))
        if chosen.isEmpty { return [] }
        let keys = chosen.flatMap { [layout.roundWinner(system, $0), layout.roundCompleted(system, $0)] }
        let reply = try await nodes[0].send(RESPCommand("MGET", keys))
        if let message = reply.errorMessage { throw BatonError.storeUnavailable("\(name) failed MGET: \(message)") }
        guard let values = reply.elements, values.count == keys.count else { throw unexpected(reply, "MGET") }
        return chosen.enumerated().compactMap { index, round in
            let winner = values[2 * index].string
            let completedBy = values[2 * index + 1].string
            // Both records expired between the scan and the read.
            if winner == nil && completedBy == nil { return nil }
            return RoundSummary(round: round, winner: winner, completedBy: completedBy)
        }
    }

    /// Every key of `node` matching `pattern`, by `SCAN` (which never blocks the server as `KEYS` would); a
    /// key may be reported twice, so the answer is de-duplicated.
    private func scan(_ node: RedisNodeClient, pattern: String) async throws -> [String] {
        var cursor = "0"
        var keys = Set<String>()
        repeat {
            let reply = try await node.send(
                RESPCommand("SCAN", cursor, "MATCH", pattern, "COUNT", String(Self.listingBatch)))
            if let message = reply.errorMessage { throw BatonError.storeUnavailable("\(name) failed SCAN: \(message)") }
            guard let parts = reply.elements, parts.count == 2, let next = parts[0].string,
                let found = parts[1].elements
            else { throw unexpected(reply, "SCAN") }
            for key in found {
                guard let key = key.string else { throw unexpected(reply, "SCAN") }
                keys.insert(key)
            }
            cursor = next
        } while cursor != "0"
        return Array(keys)
    }

    /// `text` with the characters of Redis's glob patterns (`*`, `?`, `[`, `]`, `\`) escaped, so it matches
    /// only itself.
    static func globEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text.unicodeScalars {
            if "*?[]\\".unicodeScalars.contains(character) { escaped.unicodeScalars.append("\\") }
            escaped.unicodeScalars.append(character)
        }
        return escaped
    }
}
