import Baton
import Foundation

/// How `baton leader` prints a leader.
enum LeaderReport {
    /// One line: `host-a (token 7, 9.998s left, metadata "http://10.0.0.5:8080")`; the parts the store does not
    /// know are left out.
    static func line(_ leader: LeaderInfo) -> String {
        var parts = ["token \(leader.token)"]
        if let remaining = leader.remaining { parts.append("\(seconds(remaining)) left") }
        if let metadata = leader.metadata { parts.append("metadata \(quoted(metadata))") }
        return "\(leader.holder) (\(parts.joined(separator: ", ")))"
    }

    /// One JSON object: `{"holder":"host-a","metadata":null,"remaining_ms":9998,"token":7}`.
    static func json(_ leader: LeaderInfo) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(JSONLeader(leader))
        return String(decoding: data, as: UTF8.self)
    }

    /// A duration as seconds with milliseconds: `9.998s`.
    static func seconds(_ duration: Duration) -> String {
        let milliseconds = max(0, duration.batonMilliseconds)
        let fraction = String(milliseconds % 1000)
        return "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
    }

    private struct JSONLeader: Encodable {
        enum CodingKeys: String, CodingKey {
            case holder, token, metadata
            case remainingMilliseconds = "remaining_ms"
        }

        var holder: String
        var token: Int64
        var metadata: String?
        var remainingMilliseconds: Int64?

        init(_ leader: LeaderInfo) {
            holder = leader.holder
            token = leader.token
            metadata = leader.metadata
            remainingMilliseconds = leader.remaining.map { max(0, $0.batonMilliseconds) }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(holder, forKey: .holder)
            try container.encode(token, forKey: .token)
            try container.encode(metadata, forKey: .metadata)
            try container.encode(remainingMilliseconds, forKey: .remainingMilliseconds)
        }
    }
}
