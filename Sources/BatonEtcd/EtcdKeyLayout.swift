import Foundation

/// Where the etcd store keeps things.
///
/// - An election for `KEY` is etcd's own `concurrency.Election` layout: one key `KEY/<lease ID in lower-case
///   hex>` per candidate, its value the candidate's metadata, attached to the candidate's lease; the candidate
///   whose key has the lowest create revision leads. `etcdctl elect KEY` uses the same keys, so both queue in
///   one line and `etcdctl elect -l KEY` prints Baton's leader.
/// - Beside each Baton candidate key, `baton/campaign/KEY/<hex>` (same lease) holds the holder's identity and
///   whether it has taken the lead (`l`) or is still waiting in the queue (`w`).
/// - Rounds: `baton/round/<byte length of system>:<system>/<round>` with `winner` and `completedBy` on two
///   lines, attached to a lease of the retention.
/// - Presence: `baton/presence/<byte length of group>:<group>/<member>`, attached to a lease of the ttl.
enum EtcdKeyLayout {
    static func electionPrefix(_ key: String) -> Data { Data((key + "/").utf8) }

    static func candidateKey(_ key: String, lease: Int64) -> Data {
        Data((key + "/" + leaseHex(lease)).utf8)
    }

    static func campaignPrefix(_ key: String) -> Data { Data(("baton/campaign/" + key + "/").utf8) }

    static func campaignKey(_ key: String, lease: Int64) -> Data {
        Data(("baton/campaign/" + key + "/" + leaseHex(lease)).utf8)
    }

    static func roundKey(system: String, round: String) -> Data {
        Data("baton/round/\(system.utf8.count):\(system)/\(round)".utf8)
    }

    static func presencePrefix(_ group: String) -> Data {
        Data("baton/presence/\(group.utf8.count):\(group)/".utf8)
    }

    static func presenceKey(group: String, member: String) -> Data {
        presencePrefix(group) + Data(member.utf8)
    }

    /// A lease ID as etcd's election recipe writes it: lower-case hex of the unsigned 64-bit value.
    static func leaseHex(_ lease: Int64) -> String { String(UInt64(bitPattern: lease), radix: 16) }

    /// The end of the range of every key that starts with `prefix` (etcd's "prefix end": the prefix with its
    /// last byte below 0xff increased, shorter bytes dropped; `\0` for "to the end of the key space").
    static func rangeEnd(_ prefix: Data) -> Data {
        var bytes = [UInt8](prefix)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return Data(bytes)
            }
            bytes.removeLast()
        }
        return Data([0])
    }

    /// The part of `key` after `prefix` if it is one path component (no `/`): keys of elections whose names
    /// extend this one (`KEY/sub`) are not candidates of this one.
    static func component(of key: Data, after prefix: Data) -> String? {
        guard key.count > prefix.count, key.starts(with: prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        if rest.contains(UInt8(ascii: "/")) { return nil }
        return String(decoding: rest, as: UTF8.self)
    }
}
