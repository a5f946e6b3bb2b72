/// The Lua scripts of ``RedisLeaseStore``: each store operation is one of them, so it runs atomically on the
/// server. Expiry is the server's own (`PEXPIRE`, `SET ... PX`); times are read with the server's `TIME`.
enum RedisScripts {
    /// Takes or renews a lease.
    ///
    /// KEYS: lease hash, token counter. ARGV: holder, ttl ms, has metadata (`1`/`0`), metadata, change channel,
    /// proposed token (`0`: the server picks `max(counter + 1, TIME in µs)`; Redlock proposes one).
    /// Returns `{1, token}` (acquired, or the holder's own term renewed), `{0, holder, token, has metadata,
    /// metadata, ttl ms, pttl}` (held by another), or `{-1, counter}` (the proposed token is not above the
    /// counter).
    static let acquire = RedisScript(
        name: "acquire",
        source: """
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'metadata', 'ttl')
            local new = false
            if ARGV[3] == '1' then new = ARGV[4] end
            if cur[1] then
              if cur[1] ~= ARGV[1] then
                local has = 0
                if cur[3] then has = 1 end
                return {0, cur[1], cur[2], has, cur[3] or '', cur[4] or '0', redis.call('PTTL', KEYS[1])}
              end
              redis.call('HSET', KEYS[1], 'ttl', ARGV[2])
              if new then redis.call('HSET', KEYS[1], 'metadata', new) else redis.call('HDEL', KEYS[1], 'metadata') end
              redis.call('PEXPIRE', KEYS[1], ARGV[2])
              if cur[3] ~= new then redis.call('PUBLISH', ARGV[5], cur[2]) end
              return {1, cur[2]}
            end
            local last = tonumber(redis.call('GET', KEYS[2]) or '0')
            local token
            if ARGV[6] ~= '0' then
              token = tonumber(ARGV[6])
              if token <= last then return {-1, string.format('%d', last)} end
            else
              local t = redis.call('TIME')
              token = math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
            end
            local s = string.format('%d', token)
            redis.call('SET', KEYS[2], s)
            redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', s, 'ttl', ARGV[2])
            if new then redis.call('HSET', KEYS[1], 'metadata', new) end
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            redis.call('PUBLISH', ARGV[5], s)
            return {1, s}
            """
    )

    /// Renews a term. KEYS: lease hash. ARGV: holder, token, ttl ms, has metadata, metadata, change channel.
    /// Returns 1, or 0 if the key is not in that term.
    static let renew = RedisScript(
        name: "renew",
        source: """
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'metadata')
            if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
            local new = false
            if ARGV[4] == '1' then new = ARGV[5] end
            redis.call('HSET', KEYS[1], 'ttl', ARGV[3])
            if new then redis.call('HSET', KEYS[1], 'metadata', new) else redis.call('HDEL', KEYS[1], 'metadata') end
            redis.call('PEXPIRE', KEYS[1], ARGV[3])
            if cur[3] ~= new then redis.call('PUBLISH', ARGV[6], ARGV[2]) end
            return 1
            """
    )

    /// Compare-and-delete. KEYS: lease hash. ARGV: holder, token, change channel. Returns 1 or 0.
    static let release = RedisScript(
        name: "release",
        source: """
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
            if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
            redis.call('DEL', KEYS[1])
            redis.call('PUBLISH', ARGV[3], '0')
            return 1
            """
    )

    /// The current term. KEYS: lease hash. Returns nil, or `{holder, token, has metadata, metadata, ttl ms,
    /// pttl}`.
    static let current = RedisScript(
        name: "current",
        source: """
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'metadata', 'ttl')
            if not cur[1] then return false end
            local has = 0
            if cur[3] then has = 1 end
            return {cur[1], cur[2], has, cur[3] or '', cur[4] or '0', redis.call('PTTL', KEYS[1])}
            """
    )

    /// Claims a round: `SET NX PX`, else the recorded winner. KEYS: winner. ARGV: candidate, retention ms.
    /// Returns the winner.
    static let claim = RedisScript(
        name: "claim",
        source: """
            if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
            return redis.call('GET', KEYS[1])
            """
    )

    /// Completes a round under `RoundRules`. KEYS: winner, completed. ARGV: identity, named (`1`/`0`), retention
    /// ms. Returns `{1}` recorded, `{2, completer}` already completed by another, `{3}` not the winner.
    /// The completion expires with the round's claim, or after the retention if nobody claimed.
    static let complete = RedisScript(
        name: "complete",
        source: """
            local done = redis.call('GET', KEYS[2])
            if done then
              if done == ARGV[1] then return {1} end
              return {2, done}
            end
            local winner = redis.call('GET', KEYS[1])
            if ARGV[2] == '1' and winner ~= ARGV[1] then return {3} end
            local ttl = ARGV[3]
            if winner then
              local left = redis.call('PTTL', KEYS[1])
              if left > 0 then ttl = string.format('%d', left) end
            end
            redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
            return {1}
            """
    )

    /// A heartbeat. KEYS: presence sorted set. ARGV: member, ttl ms. Scores are expiry times in server ms;
    /// expired members are dropped and the set expires with its last member.
    static let heartbeat = RedisScript(
        name: "heartbeat",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
            redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
            local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
            redis.call('PEXPIREAT', KEYS[1], last[2])
            return 1
            """
    )

    /// The live members. KEYS: presence sorted set. Returns the members whose expiry is after the server's now.
    static let members = RedisScript(
        name: "members",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now), '+inf')
            """
    )
}

extension RedisScripts {
    /// The terms of many leases at once, for listings. KEYS: lease hashes. Returns one entry per key: `{}` if
    /// the key holds no term, else `{holder, token, has metadata, metadata, ttl ms, pttl}` as ``current``.
    static let currentMany = RedisScript(
        name: "currentMany",
        source: """
            local out = {}
            for i, key in ipairs(KEYS) do
              local cur = redis.call('HMGET', key, 'holder', 'token', 'metadata', 'ttl')
              if cur[1] then
                local has = 0
                if cur[3] then has = 1 end
                out[i] = {cur[1], cur[2], has, cur[3] or '', cur[4] or '0', redis.call('PTTL', key)}
              else
                out[i] = {}
              end
            end
            return out
            """
    )
}
