import Baton
import Foundation
import SwiftProtobuf

extension EtcdLeaseStore {
    // MARK: Rounds

    public func claim(system: String, round: String, candidate: String, retention: Duration) async throws
        -> ClaimResult
    {
        try await lifecycle.ready()
        return try await updateRound(system: system, round: round, retention: retention) { record in
            let (result, updated) = RoundRules.claim(record, candidate: candidate)
            return .success((result, updated))
        }
    }

    public func winner(system: String, round: String) async throws -> String? {
        try await lifecycle.ready()
        return try await readRound(system: system, round: round)?.record.winner
    }

    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await lifecycle.ready()
        try await updateRound(system: system, round: round, retention: retention) { record in
            RoundRules.complete(record, by: completer, system: system, round: round).map { ((), $0) }
        }
    }

    public func completion(system: String, round: String) async throws -> String? {
        try await lifecycle.ready()
        return try await readRound(system: system, round: round)?.record.completedBy
    }

    /// Applies `rule` to the round's record in a compare-and-set loop: a new record is created only if the key
    /// is still absent (attached to a lease of the retention), an existing one is replaced only if it was not
    /// modified since it was read.
    private func updateRound<Result: Sendable>(
        system: String,
        round: String,
        retention: Duration,
        _ rule: (RoundRecord?) -> Swift.Result<(Result, RoundRecord), BatonError>
    ) async throws -> Result {
        let key = EtcdKeyLayout.roundKey(system: system, round: round)
        for _ in 0..<16 {
            let stored = try await readRound(system: system, round: round)
            let (result, record) = try rule(stored?.record).get()
            if let stored, stored.record == record { return result }
            let value = Data(Self.encode(record).utf8)
            if let stored {
                let answer = try await txn(
                    "record the round",
                    compare: [.modRevision(of: key, equals: stored.modRevision)],
                    success: [.put(key, value: value, keepLease: true)]
                )
                if answer.succeeded { return result }
            } else {
                let lease = try await grant(EtcdCampaignMachine.ttlSeconds(retention))
                let answer = try await txn(
                    "record the round",
                    compare: [.createRevision(of: key, equals: 0)],
                    success: [.put(key, value: value, lease: lease)]
                )
                if answer.succeeded { return result }
                try? await revoke(lease)
            }
        }
        throw BatonError.timeout("the round \(system)/\(round) kept changing while it was being recorded")
    }

    private func readRound(system: String, round: String) async throws -> (record: RoundRecord, modRevision: Int64)? {
        let key = EtcdKeyLayout.roundKey(system: system, round: round)
        let answer = try await txn("read the round", compare: [], success: [.get(key)])
        guard let kv = answer.responses.first?.responseRange.kvs.first else { return nil }
        return (Self.decodeRound(kv.value), kv.modRevision)
    }

    /// The record stored as a round key's value (see ``encode(_:)``).
    static func decodeRound(_ value: Data) -> RoundRecord {
        let lines = String(decoding: value, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let winner = lines.first.map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let completedBy = lines.count > 1 && !lines[1].isEmpty ? String(lines[1]) : nil
        return RoundRecord(winner: winner, completedBy: completedBy)
    }

    /// Winner and completer on two lines (names never hold control characters, so a newline separates them).
    private static func encode(_ record: RoundRecord) -> String {
        (record.winner ?? "") + "\n" + (record.completedBy ?? "")
    }

    // MARK: Presence

    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try await lifecycle.ready()
        let lease = try await grant(EtcdCampaignMachine.ttlSeconds(ttl))
        let key = EtcdKeyLayout.presenceKey(group: group, member: member)
        let answer = try await txn(
            "heartbeat",
            compare: [],
            success: [.get(key), .put(key, value: Data(), lease: lease)]
        )
        // The member's previous lease holds no key any more: let it go now rather than at its expiry.
        if let previous = answer.responses.first?.responseRange.kvs.first?.lease, previous != 0, previous != lease {
            try? await revoke(previous)
        }
    }

    public func leave(group: String, member: String) async throws {
        try await lifecycle.ready()
        let key = EtcdKeyLayout.presenceKey(group: group, member: member)
        let answer = try await txn("leave", compare: [], success: [.get(key), .delete(key)])
        if let previous = answer.responses.first?.responseRange.kvs.first?.lease, previous != 0 {
            try? await revoke(previous)
        }
    }

    public func members(group: String) async throws -> [String] {
        try await lifecycle.ready()
        let prefix = EtcdKeyLayout.presencePrefix(group)
        let answer = try await txn("list members", compare: [], success: [.rangeByCreation(prefix)])
        let kvs = answer.responses.first?.responseRange.kvs ?? []
        return kvs.map { String(decoding: $0.key.dropFirst(prefix.count), as: UTF8.self) }.sorted()
    }
}
