import Baton
import Foundation

/// How `baton list` prints leases and rounds: a table for people, one JSON object for programs.
enum ListReport {
    /// A table with a header: key, holder, token, time left, metadata (`-` where unknown or absent); `no leases
    /// held` when there are none.
    static func table(_ listing: LeaseListing) -> String {
        if listing.leases.isEmpty { return "no leases held" }
        let rows = listing.leases.map { held in
            [
                held.key, held.leader.holder, String(held.leader.token),
                held.leader.remaining.map(LeaderReport.seconds) ?? "-",
                held.leader.metadata.map(quoted) ?? "-",
            ]
        }
        return table(header: ["KEY", "HOLDER", "TOKEN", "LEFT", "METADATA"], rows: rows)
    }

    /// A table with a header: round, winner, completed by (`-` where none); `no rounds kept` when there are none.
    static func table(_ listing: RoundListing) -> String {
        if listing.rounds.isEmpty { return "no rounds kept" }
        let rows = listing.rounds.map { [$0.round, $0.winner ?? "-", $0.completedBy ?? "-"] }
        return table(header: ["ROUND", "WINNER", "COMPLETED BY"], rows: rows)
    }

    /// `{"leases":[{"key","holder","token","metadata","ttl_ms","remaining_ms"}],"prefix","truncated"}`, as
    /// `GET /v2/leases` answers.
    static func json(_ listing: LeaseListing, prefix: String) throws -> String {
        try encode(
            JSONLeases(
                prefix: prefix,
                leases: listing.leases.map {
                    JSONLease(
                        key: $0.key,
                        holder: $0.leader.holder,
                        token: $0.leader.token,
                        metadata: $0.leader.metadata,
                        ttlMilliseconds: $0.leader.ttl.map(\.batonMilliseconds),
                        remainingMilliseconds: $0.leader.remaining.map { max(0, $0.batonMilliseconds) }
                    )
                },
                truncated: listing.isTruncated
            )
        )
    }

    /// `{"rounds":[{"completed_by","round","winner"}],"system","truncated"}`, as `GET /v2/rounds/{system}` answers.
    static func json(_ listing: RoundListing, system: String) throws -> String {
        try encode(
            JSONRounds(
                system: system,
                rounds: listing.rounds.map {
                    JSONRound(round: $0.round, winner: $0.winner, completedBy: $0.completedBy)
                },
                truncated: listing.isTruncated
            )
        )
    }

    /// Columns padded to their widest cell, two spaces apart, without trailing spaces.
    static func table(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { column in
                column == row.count - 1
                    ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            .joined(separator: "  ")
        }
        .joined(separator: "\n")
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }

    private static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    // Optional fields are written as null, not left out, so every object has every key.
    private struct JSONLease: Encodable {
        var key: String
        var holder: String
        var token: Int64
        var metadata: String?
        var ttlMilliseconds: Int64?
        var remainingMilliseconds: Int64?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(key, forKey: .key)
            try container.encode(holder, forKey: .holder)
            try container.encode(token, forKey: .token)
            try container.encode(metadata, forKey: .metadata)
            try container.encode(ttlMilliseconds, forKey: .ttlMilliseconds)
            try container.encode(remainingMilliseconds, forKey: .remainingMilliseconds)
        }

        enum CodingKeys: String, CodingKey {
            case key, holder, token, metadata
            case ttlMilliseconds = "ttl_ms"
            case remainingMilliseconds = "remaining_ms"
        }
    }

    private struct JSONLeases: Encodable {
        var prefix: String
        var leases: [JSONLease]
        var truncated: Bool
    }

    private struct JSONRound: Encodable {
        var round: String
        var winner: String?
        var completedBy: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(round, forKey: .round)
            try container.encode(winner, forKey: .winner)
            try container.encode(completedBy, forKey: .completedBy)
        }

        enum CodingKeys: String, CodingKey {
            case round, winner
            case completedBy = "completed_by"
        }
    }

    private struct JSONRounds: Encodable {
        var system: String
        var rounds: [JSONRound]
        var truncated: Bool
    }
}
