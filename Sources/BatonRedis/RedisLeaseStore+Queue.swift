@_spi(BatonStoreKit) import Baton
import Synchronization

/// The queue of waiting candidates on one server (``RedisQueueScripts``): acquires in arrival order, a release
/// that hands the key to the next in line, and change feeds that learn each new term from its message.
extension RedisLeaseStore {
    /// True on one server: a candidate refused by a waiting acquire keeps a place in the key's queue for one and a
    /// half ttl, and a free key goes to the head of the queue. A Redlock quorum keeps no queue (its nodes could order
    /// candidates differently).
    public var queuesWaiters: Bool { nodes.count == 1 }

    /// One: a place lasts one and a half ttl after the candidate's last waiting acquire, so one ask per ttl
    /// keeps it.
    public var queueAsksPerTTL: Int { 1 }

    /// Takes or renews `key` for `holder`, in queue order on one server.
    ///
    /// - The holder's own live term: renewed (same token).
    /// - Held by another: refused with that leader; a waiting acquire joins the queue (or keeps its place there
    ///   for another `ttl`).
    /// - Free with a live waiter ahead of the holder: the head of the queue gets the key (its term starts now,
    ///   with the ttl and metadata of its last waiting acquire) and the answer names it; a waiting acquire joins
    ///   the queue.
    /// - Free, and the holder first in line or nobody waiting: a new term.
    ///
    /// With several nodes (Redlock) this is the plain acquire.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        probe?.adapt(toTTL: ttl)
        if nodes.count > 1 { return try await redlockAcquire(key: key, holder: holder, ttl: ttl, metadata: metadata) }
        let term = Duration.milliseconds(ttl.batonMilliseconds)
        if waiting,
            let handed = handedTerms.handedTerm(
                key: key, holder: holder, ttl: term, metadata: metadata, pushed: payloads.latest(key)?.state)
        {
            return .acquired(handed)
        }
        let sent = clock.now()
        let reply = try await nodes[0].run(
            RedisQueueScripts.acquire,
            keys: layout.queueScriptKeys(key),
            arguments: [
                holder, String(ttl.batonMilliseconds), metadata == nil ? "0" : "1", metadata ?? "",
                layout.changeChannel(key), waiting ? "1" : "0",
            ]
        )
        guard let parts = reply.elements, let status = parts.first?.int64 else { throw unexpected(reply, "acquire") }
        if status == 1 {
            guard parts.count == 2, let token = parts[1].int64 else { throw unexpected(reply, "acquire") }
            handedTerms.stopped(key: key, holder: holder)
            handedTerms.saw(key: key, token: token)
            return .acquired(Lease(key: key, holder: holder, token: token, ttl: ttl, metadata: metadata))
        }
        guard let leader = leaderInfo(Array(parts.dropFirst())) else { throw unexpected(reply, "acquire") }
        if waiting {
            handedTerms.refused(key: key, holder: holder, ttl: term, metadata: metadata, sentAt: sent, leader: leader)
        } else {
            handedTerms.saw(key: key, token: leader.token)
        }
        return .held(by: leader)
    }

    /// How many times change feeds have read the server (one server).
    var queueLooks: Int { looks.load(ordering: .relaxed) }

    /// Ends `lease`'s term on one server and hands the key to the head of the queue, if any.
    func queuedRelease(_ lease: Lease) async throws {
        handedTerms.saw(key: lease.key, token: lease.token)
        let reply = try await nodes[0].run(
            RedisQueueScripts.release,
            keys: layout.queueScriptKeys(lease.key),
            arguments: [lease.holder, String(lease.token), layout.changeChannel(lease.key)]
        )
        guard reply.int64 != nil else { throw unexpected(reply, "release") }
    }

    /// Takes `holder` out of `key`'s queue at once, on one server (a Redlock quorum keeps no queue); a term it
    /// holds is left alone.
    /// - Throws: ``BatonError`` `storeUnavailable`, `timeout`.
    public func leaveQueue(key: String, holder: String) async throws {
        guard queuesWaiters else { return }
        handedTerms.stopped(key: key, holder: holder)
        let reply = try await nodes[0].run(
            RedisQueueScripts.leave, keys: layout.queueScriptKeys(key), arguments: [holder])
        guard reply.int64 != nil else { throw unexpected(reply, "leaving the queue") }
    }

    /// A change feed's read of `key` on one server: the state the key's last message carried when it is news,
    /// else a look at the server (which hands a free key to the head of its queue).
    func queueFeedRead(_ key: String) -> @Sendable () async throws -> LeaderInfo? {
        let reader = PushedStateFeedReader(key: key, states: payloads) { [self] in try await look(key) }
        return { @Sendable [self] in
            // Subscribed before reading, so a change right after the read is pushed, not missed. The feed's timer
            // at the term's remaining time stays armed even where the server pushes expiry (keyspace
            // notifications): an `expired` event lost with a connection that died silently must not leave waiting
            // candidates asleep.
            _ = try await subscriber.ensureSubscribed(key, needed: 1)
            let leader = try await reader.read()
            // A follower that never acquires still probes within its leader's ttl.
            if let ttl = leader?.ttl { probe?.adapt(toTTL: ttl) }
            return leader
        }
    }

    /// The key's term, after handing a free key to the head of its queue; with the state's place in the key's
    /// order.
    private func look(_ key: String) async throws -> (LeaderInfo?, FeedVersion?) {
        looks.add(1, ordering: .relaxed)
        let reply = try await nodes[0].run(
            RedisQueueScripts.look, keys: layout.queueScriptKeys(key), arguments: [layout.changeChannel(key)])
        guard let parts = reply.elements, let status = parts.first?.int64 else { throw unexpected(reply, "look") }
        if status == 0 {
            guard parts.count == 2, let last = parts[1].int64 else { throw unexpected(reply, "look") }
            return (nil, FeedVersion(token: last, free: true))
        }
        guard let leader = leaderInfo(Array(parts.dropFirst())) else { throw unexpected(reply, "look") }
        return (leader, FeedVersion(token: leader.token, free: false))
    }
}
