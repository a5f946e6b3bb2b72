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
    /// Baton's own records under `baton/campaign/`, `baton/round/` and `baton/presence/`, are not. etcd does not
    /// tell a term's time left without a request per lease, so it is not given (`remaining` is nil).
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
        return keys.compactMap { name, kvs in
            let election = Self.candidates(name, keys: kvs, records: records[name] ?? [])
            return Self.leader(of: election).map { HeldLease(key: name, leader: $0) }
        }
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
