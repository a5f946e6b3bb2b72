import Baton
import Foundation

extension EtcdLeaseStore {
    // MARK: Reading an election

    static let leadingMark = "l\n"
    static let waitingMark = "w\n"

    /// One candidate of an election, as read from etcd.
    struct Candidate {
        var key: Data
        var revision: Int64
        var lease: Int64?
        /// The lease ID in the key's name (`KEY/<hex>`), if the name is one.
        var name: Int64?
        var value: String
        /// The holder, for Baton candidates (nil for keys other clients wrote).
        var holder: String?
        var waiting: Bool
    }

    /// The reads of an election: its candidate keys by create revision, and Baton's campaign records.
    static func electionReads(_ key: String, serializable: Bool = false) -> [Etcdserverpb_RequestOp] {
        [
            .rangeByCreation(EtcdKeyLayout.electionPrefix(key), serializable: serializable),
            .rangeByCreation(EtcdKeyLayout.campaignPrefix(key), serializable: serializable),
        ]
    }

    func readElection(_ key: String) async throws -> [Candidate] {
        try await readElectionAndRevision(key).election
    }

    /// The election as the member answering has it, without a round of consensus: a moment old at worst. For
    /// choosing whom to hand over to, which the handover's own compare then checks.
    func readElectionQuickly(_ key: String) async throws -> [Candidate] {
        let answer = try await txn("read the queue", compare: [], success: Self.electionReads(key, serializable: true))
        return Self.parseElection(key, answer.responses[...])
    }

    /// The election and the store revision it was read at.
    func readElectionAndRevision(_ key: String) async throws -> (election: [Candidate], revision: Int64) {
        let answer = try await txn("read the leader", compare: [], success: Self.electionReads(key))
        return (Self.parseElection(key, answer.responses[...]), answer.header.revision)
    }

    /// The candidates in queue order, from the answers of ``electionReads(_:)``.
    static func parseElection(_ key: String, _ responses: ArraySlice<Etcdserverpb_ResponseOp>) -> [Candidate] {
        guard responses.count >= 2 else { return [] }
        return candidates(
            key,
            keys: responses[responses.startIndex].responseRange.kvs,
            records: responses[responses.startIndex + 1].responseRange.kvs
        )
    }

    /// The candidates of `key` in queue order, from its election keys and campaign records (others are skipped).
    static func candidates(_ key: String, keys: [Mvccpb_KeyValue], records: [Mvccpb_KeyValue]) -> [Candidate] {
        let electionPrefix = EtcdKeyLayout.electionPrefix(key)
        let campaignPrefix = EtcdKeyLayout.campaignPrefix(key)
        var marks: [String: (holder: String, waiting: Bool)] = [:]
        for record in records {
            guard let name = EtcdKeyLayout.component(of: record.key, after: campaignPrefix) else { continue }
            let text = String(decoding: record.value, as: UTF8.self)
            let waiting = text.hasPrefix(waitingMark)
            guard waiting || text.hasPrefix(leadingMark) else { continue }
            marks[name] = (String(text.dropFirst(2)), waiting)
        }
        return keys.compactMap { kv in
            guard let name = EtcdKeyLayout.component(of: kv.key, after: electionPrefix) else { return nil }
            let mark = marks[name]
            return Candidate(
                key: kv.key,
                revision: kv.createRevision,
                lease: kv.lease == 0 ? nil : kv.lease,
                name: UInt64(name, radix: 16).map { Int64(bitPattern: $0) },
                value: String(decoding: kv.value, as: UTF8.self),
                holder: mark?.holder,
                waiting: mark?.waiting ?? false
            )
        }
        .sorted { $0.revision < $1.revision }
    }

    /// The leader: the head of the queue, unless it is a Baton candidate that has not taken the lead yet.
    static func leader(of election: [Candidate]) -> LeaderInfo? {
        guard let head = election.first, !head.waiting else { return nil }
        return info(head)
    }

    /// Who a refused acquirer is told leads: the head of the queue, taken or about to be.
    static func leaderOrHead(of election: [Candidate]) -> LeaderInfo {
        guard let head = election.first else { return LeaderInfo(holder: "", token: 0) }
        return info(head)
    }

    private static func info(_ candidate: Candidate) -> LeaderInfo {
        LeaderInfo(
            holder: candidate.holder ?? candidate.value,
            token: candidate.revision,
            metadata: candidate.value.isEmpty ? nil : candidate.value
        )
    }
}
