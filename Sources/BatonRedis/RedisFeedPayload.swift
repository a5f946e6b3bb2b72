@_spi(BatonStoreKit) import Baton

/// What a queue script (``RedisQueueScripts``) publishes on a key's change channel: the term that just started,
/// or that the key is now free with nobody waiting. A change feed that receives it knows the key's state without
/// reading the server (see `PushedLeaderStates`), so a release costs one request (and the next leader's own
/// acquire) however many processes follow the key.
///
/// Format: `q1 T <token> <ttl ms> <0|1 has metadata> <holder's length in bytes> <holder><metadata>` for a term,
/// `q1 F <last token>` for a free key. Any other message (a token alone, as Redlock and renews with new metadata
/// publish) carries no state: the feed reads the server.
enum RedisFeedPayload {
    /// The state `message` carries, or nil if it carries none.
    static func parse(_ message: String) -> PushedLeaderState? {
        guard message.utf8.starts(with: "q1 ".utf8) else { return nil }
        let fields = message.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: false)
        switch fields.count >= 3 ? fields[1] : "" {
        case "F":
            guard fields.count == 3, let last = FencingToken(fields[2]) else { return nil }
            return .free(lastToken: last)
        case "T":
            guard fields.count == 7, let token = FencingToken(fields[2]), let ttl = Int64(fields[3]),
                let hasMetadata = Int(fields[4]), let length = Int(fields[5])
            else { return nil }
            let rest = fields[6].utf8
            guard length >= 0, length <= rest.count else { return nil }
            let split = rest.index(rest.startIndex, offsetBy: length)
            guard let holder = String(rest[..<split]), let metadata = String(rest[split...]) else { return nil }
            return .term(
                LeaderInfo(
                    holder: holder,
                    token: token,
                    metadata: hasMetadata == 1 ? metadata : nil,
                    ttl: .milliseconds(ttl),
                    remaining: .milliseconds(ttl)
                ))
        default:
            return nil
        }
    }
}
