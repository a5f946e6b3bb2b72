@_spi(BatonStoreKit) import Baton

/// The payload the trigger on `baton_leases` sends on the states channel (`baton_states_<schema>`) at each new
/// term, release and change of metadata: the key and its new state, so that a change feed knows it without
/// reading the database (see `PushedLeaderStates`). PostgreSQL delivers a listener's notifications in commit
/// order, so the last one received for a key is the key's newest state.
///
/// Format: `p1 <key bytes> <token> <ttl ms> <holder bytes, -1 when free> <0|1 has metadata> <key><holder><metadata>`,
/// or `p0 <key>` for a change whose state would not fit in a notification (PostgreSQL allows 8,000 bytes).
enum PostgresStatePayload {
    /// The key and its state; the state is nil for `p0` (read the key). Nil for a payload of another form.
    static func parse(_ payload: String) -> (key: String, state: PushedLeaderState?)? {
        if payload.utf8.starts(with: "p0 ".utf8) {
            let key = String(payload.dropFirst(3))
            return key.isEmpty ? nil : (key, nil)
        }
        guard payload.utf8.starts(with: "p1 ".utf8) else { return nil }
        let fields = payload.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: false)
        guard fields.count == 7, let keyLength = Int(fields[1]), let token = FencingToken(fields[2]),
            let ttl = Int64(fields[3]), let holderLength = Int(fields[4]), let hasMetadata = Int(fields[5]),
            keyLength > 0, holderLength >= -1, hasMetadata == 0 || hasMetadata == 1
        else { return nil }
        let rest = fields[6].utf8
        guard keyLength + max(holderLength, 0) <= rest.count else { return nil }
        let keyEnd = rest.index(rest.startIndex, offsetBy: keyLength)
        let holderEnd = rest.index(keyEnd, offsetBy: max(holderLength, 0))
        guard let key = String(rest[..<keyEnd]), let holder = String(rest[keyEnd..<holderEnd]),
            let metadata = String(rest[holderEnd...])
        else { return nil }
        guard holderLength >= 0 else {
            return metadata.isEmpty && hasMetadata == 0 ? (key, .free(lastToken: token)) : nil
        }
        let leader = LeaderInfo(
            holder: holder,
            token: token,
            metadata: hasMetadata == 1 ? metadata : nil,
            ttl: .milliseconds(ttl),
            remaining: .milliseconds(ttl)
        )
        return (key, .term(leader))
    }
}
