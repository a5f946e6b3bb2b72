@_spi(BatonStoreKit) import Baton
import Foundation
import SwiftProtobuf

extension EtcdLeaseStore {
    /// The areas of the key space that hold Baton's own records, never lease keys.
    static let ownAreas = ["baton/campaign/", "baton/round/", "baton/presence/"].map { Data($0.utf8) }

    /// The led keys that start with `prefix`, each with its leader as ``current(key:)`` reports it: the
    /// candidate with the lowest create revision, unless it is a Baton candidate still waiting to take the lead.
    ///
    /// One transaction reads, at one revision, every key under `prefix` and Baton's campaign records under it. A
    /// key counts as a candidate of election `KEY` when it is `KEY/<lease ID in lower-case hex>` attached to a
    /// lease (etcd's `concurrency.Election` layout, so keys of `etcdctl elect` are listed too); other keys, and
    /// Baton's own records under `baton/campaign/`, `baton/round/` and `baton/presence/`, are not. The first
    /// `limit` leaders' time left is then read from their etcd leases (`LeaseTimeToLive`, one request each, a
    /// few at a time), in whole seconds rounded down; a key written by another client without a lease of its own
    /// has none.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        try await lifecycle.ready()
        let from = Data(prefix.utf8)
        let leaseRange: Etcdserverpb_RequestOp =
            from.isEmpty ? .range(from: Data([0]), to: Data([0])) : .range(from: from, to: EtcdKeyLayout.rangeEnd(from))
        let campaigns = Data("baton/campaign/".utf8) + from
        let answer = try await txn(
            "list the leases",
            compare: [],
            success: [leaseRange, .range(from: campaigns, to: EtcdKeyLayout.rangeEnd(campaigns))]
        )
        guard answer.responses.count == 2 else {
            throw BatonError.storeUnavailable("etcd answered the listing of \(prefix)* with a partial transaction")
        }
        var keys: [String: [Mvccpb_KeyValue]] = [:]
        for kv in answer.responses[0].responseRange.kvs where kv.lease != 0 {
            guard !Self.ownAreas.contains(where: { kv.key.starts(with: $0) }),
                let name = Self.electionName(of: kv.key), name.utf8.starts(with: prefix.utf8)
            else { continue }
            keys[name, default: []].append(kv)
        }
        var records: [String: [Mvccpb_KeyValue]] = [:]
        for kv in answer.responses[1].responseRange.kvs {
            guard let name = Self.electionName(of: kv.key.dropFirst(Self.ownAreas[0].count)) else { continue }
            records[name, default: []].append(kv)
        }
        let held = keys.compactMap { name, kvs -> (lease: HeldLease, id: Int64?)? in
            let election = Self.candidates(name, keys: kvs, records: records[name] ?? [])
            return Self.leader(of: election).map { (HeldLease(key: name, leader: $0), election.first?.lease) }
        }
        let first = held.sorted { ListingLimits.precedes($0.lease.key, $1.lease.key) }.prefix(limit)
        return try await withTimeLeft(Array(first))
    }

    /// The leases with the time left of their etcd leases (`LeaseTimeToLive`, a few at a time): whole seconds,
    /// rounded down by etcd, so never more than is left.
    private func withTimeLeft(_ held: [(lease: HeldLease, id: Int64?)]) async throws -> [HeldLease] {
        var answers: [HeldLease] = []
        var start = 0
        while start < held.count {
            let batch = held[start..<min(start + 16, held.count)]
            start += batch.count
            let answered = try await withThrowingTaskGroup(of: (Int, HeldLease).self) { group in
                for (index, entry) in batch.enumerated() {
                    group.addTask {
                        var lease = entry.lease
                        if let id = entry.id, let (left, granted) = try await self.timeToLive(id) {
                            lease.leader.remaining = left > 0 ? .seconds(left) : nil
                            lease.leader.ttl = granted > 0 ? .seconds(granted) : nil
                        }
                        return (index, lease)
                    }
                }
                var found = [HeldLease?](repeating: nil, count: batch.count)
                for try await (index, lease) in group { found[index] = lease }
                return found.compactMap { $0 }
            }
            answers += answered
        }
        return answers
    }

    /// The seconds left and granted of an etcd lease; nil if etcd no longer has it.
    private func timeToLive(_ id: Int64) async throws -> (left: Int64, granted: Int64)? {
        let request = Etcdserverpb_LeaseTimeToLiveRequest.with { $0.id = id }
        let options = client.options()
        let response = try await client.call("read a lease's time left") { grpc, metadata in
            try await Etcdserverpb_Lease.Client(wrapping: grpc).leaseTimeToLive(
                request, metadata: metadata, options: options)
        }
        return response.ttl < 0 ? nil : (response.ttl, response.grantedTtl)
    }

    /// The kept rounds of `system` (their records' leases have not expired), with winner and completer.
    ///
    /// One range read of `baton/round/<n>:<system>/`, sorted by key in descending order and limited to `limit`.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        try await lifecycle.ready()
        let head = EtcdKeyLayout.roundKey(system: system, round: "")
        var read = Etcdserverpb_RequestOp.range(from: head, to: EtcdKeyLayout.rangeEnd(head))
        read.requestRange.sortTarget = .key
        read.requestRange.sortOrder = .descend
        read.requestRange.limit = Int64(limit)
        let answer = try await txn("list the rounds", compare: [], success: [read])
        return (answer.responses.first?.responseRange.kvs ?? []).compactMap { kv in
            guard kv.key.count > head.count, let round = String(validating: kv.key.dropFirst(head.count), as: UTF8.self)
            else { return nil }
            return RoundSummary(round: round, record: Self.decodeRound(kv.value))
        }
    }

    /// The election `KEY` of a candidate key `KEY/<lease ID in lower-case hex>`, or nil for any other key.
    static func electionName(of key: some BidirectionalCollection<UInt8>) -> String? {
        guard let slash = key.lastIndex(of: UInt8(ascii: "/")), slash != key.startIndex else { return nil }
        let id = key[key.index(after: slash)...]
        let isHex = id.allSatisfy {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
        }
        guard !id.isEmpty, id.count <= 16, isHex else { return nil }
        return String(validating: key[..<slash], as: UTF8.self)
    }
}

extension Etcdserverpb_RequestOp {
    /// Every key from `key` up to `end` (exclusive; `\0` for "to the end of the key space").
    static func range(from key: Data, to end: Data) -> Self {
        .with {
            $0.requestRange = .with {
                $0.key = key
                $0.rangeEnd = end
            }
        }
    }
}
