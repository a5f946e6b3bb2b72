/// Where ``RedisLeaseStore`` keeps its data, so that an operator can read it with `redis-cli`. With the default
/// prefix `baton`:
///
/// | key | type | holds |
/// |---|---|---|
/// | `baton:lease:<key>` | hash | `holder`, `token`, `ttl` (ms), `metadata` (absent if none); expires with the term (`PEXPIRE`) |
/// | `baton:token:<key>` | string | the last fencing token issued for `<key>`; never expires (tokens never go back) |
/// | `baton:round:<n>:<system>:<round>:winner` | string | the round's winner; expires after the retention (`SET NX PX`) |
/// | `baton:round:<n>:<system>:<round>:completed` | string | who completed the round; expires with the winner record |
/// | `baton:presence:<group>` | sorted set | member → expiry in the server's Unix milliseconds; expires with its last member |
/// | `baton:queue:<key>` | sorted set | waiting candidate → arrival (server Unix µs, strictly rising): the queue's order |
/// | `baton:queue-expiry:<key>` | sorted set | waiting candidate → when it leaves the queue unless it asks again (server ms) |
/// | `baton:queue-ask:<key>` | hash | waiting candidate → `<ttl ms>:<0 or 1><metadata>`, what its term will be |
///
/// The three queue keys are layout version 2 (one server only; a Redlock quorum keeps no queue), and expire with
/// the queue's last waiter. Version 1 had no queue. Candidates of version 1 work beside those of version 2: they
/// never queue, and take a key only when they find it free, which a release with candidates queued never leaves
/// it (the release hands the key to the head of the queue), so they wait until the queue is empty.
///
/// `<n>` is the byte length of `<system>`, so that no two (system, round) pairs share a key whatever separators
/// their names contain. Acquire, renew with new metadata, release and takeover publish on the channel
/// `baton:changes:<key>` (with a Redlock quorum the message is the term's token, or `0` for a release; on one
/// server a new term and a release publish their content, see ``RedisFeedPayload``); the store also listens on
/// `__keyspace@<db>__:baton:lease:<key>` for expiry where the server has keyspace notifications enabled.
///
/// For example: `redis-cli HGETALL baton:lease:jobs/cleaner`, `redis-cli PTTL baton:lease:jobs/cleaner`,
/// `redis-cli ZRANGE baton:presence:workers 0 -1 WITHSCORES`, `redis-cli SUBSCRIBE baton:changes:jobs/cleaner`.
struct RedisKeyLayout: Sendable {
    /// The prefix of every key and channel, without the colon.
    let prefix: String
    /// The database number, for keyspace channels.
    let database: Int

    func lease(_ key: String) -> String { "\(prefix):lease:\(key)" }
    func token(_ key: String) -> String { "\(prefix):token:\(key)" }
    func roundWinner(_ system: String, _ round: String) -> String { roundBase(system, round) + ":winner" }
    func roundCompleted(_ system: String, _ round: String) -> String { roundBase(system, round) + ":completed" }
    func presence(_ group: String) -> String { "\(prefix):presence:\(group)" }
    func queue(_ key: String) -> String { "\(prefix):queue:\(key)" }
    func queueExpiry(_ key: String) -> String { "\(prefix):queue-expiry:\(key)" }
    func queueAsk(_ key: String) -> String { "\(prefix):queue-ask:\(key)" }
    /// The keys of every queue script (``RedisQueueScripts``), in their order.
    func queueScriptKeys(_ key: String) -> [String] {
        [lease(key), token(key), queue(key), queueExpiry(key), queueAsk(key)]
    }
    func changeChannel(_ key: String) -> String { "\(prefix):changes:\(key)" }
    func keyspaceChannel(_ key: String) -> String { "__keyspace@\(database)__:" + lease(key) }

    /// The lease key a change or keyspace channel is about, and whether the channel is the keyspace one; nil for
    /// another channel.
    func key(ofChannel channel: String) -> (key: String, keyspace: Bool)? {
        // Compared as bytes: a key may start with a combining character that would join the ':' before it.
        for (head, keyspace) in [("\(prefix):changes:", false), ("__keyspace@\(database)__:\(prefix):lease:", true)]
        where channel.utf8.starts(with: head.utf8) {
            return (String(decoding: channel.utf8.dropFirst(head.utf8.count), as: UTF8.self), keyspace)
        }
        return nil
    }

    private func roundBase(_ system: String, _ round: String) -> String {
        "\(prefix):round:\(system.utf8.count):\(system):\(round)"
    }
}
