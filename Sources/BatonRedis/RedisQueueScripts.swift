/// The Lua scripts of a single Redis server's queue of waiting candidates (layout version 2, see
/// ``RedisKeyLayout``). Every script takes the same five keys: the lease hash, the token counter, and the queue's
/// three keys (arrival order, expiry, and what each waiter asked for).
///
/// The rules, in every script:
/// - A waiter whose last waiting acquire is older than one and a half times its ttl is out of the queue (dropped
///   when a script looks).
/// - A free key goes to the head of the queue: whoever finds it free with a live waiter ahead of it (an acquire, a
///   release, a change feed's look) starts the head's term with the head's ttl and metadata, publishes it, and
///   answers it as the leader.
/// - Every term that starts and every release is published on the key's change channel with its content (see
///   ``RedisFeedPayload``), so change feeds learn it without reading the server.
enum RedisQueueScripts {
    /// Lua functions shared by the scripts. `KEYS`: lease, token counter, queue (holder → arrival, µs), queue
    /// expiry (holder → server ms), queue asks (holder → `<ttl ms>:<0|1><metadata>`).
    private static let functions = """
        local function now_ms()
          local t = redis.call('TIME')
          return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        local function leave_queue(holder)
          redis.call('ZREM', KEYS[3], holder)
          redis.call('ZREM', KEYS[4], holder)
          redis.call('HDEL', KEYS[5], holder)
        end
        local function purge(now)
          local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', string.format('%d', now), 'LIMIT', 0, 128)
          for _, holder in ipairs(gone) do leave_queue(holder) end
        end
        local function join(holder, ttl, new, now)
          if not redis.call('ZSCORE', KEYS[3], holder) then
            local t = redis.call('TIME')
            local at = tonumber(t[1]) * 1000000 + tonumber(t[2])
            local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
            if tail[2] and tonumber(tail[2]) >= at then at = tonumber(tail[2]) + 1 end
            redis.call('ZADD', KEYS[3], string.format('%d', at), holder)
          end
          local ask = ttl .. ':0'
          if new then ask = ttl .. ':1' .. new end
          redis.call('HSET', KEYS[5], holder, ask)
          redis.call('ZADD', KEYS[4], string.format('%d', now + math.floor(tonumber(ttl) * 3 / 2)), holder)
          local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
          for i = 3, 5 do redis.call('PEXPIREAT', KEYS[i], last[2]) end
        end
        local function payload(holder, token, ttl, new)
          local has = '0'
          if new then has = '1' end
          return 'q1 T ' .. token .. ' ' .. ttl .. ' ' .. has .. ' ' .. #holder .. ' ' .. holder .. (new or '')
        end
        local function start_term(holder, ttl, new, channel)
          local last = tonumber(redis.call('GET', KEYS[2]) or '0')
          local t = redis.call('TIME')
          local s = string.format('%d', math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2])))
          redis.call('SET', KEYS[2], s)
          redis.call('HSET', KEYS[1], 'holder', holder, 'token', s, 'ttl', ttl)
          if new then redis.call('HSET', KEYS[1], 'metadata', new) end
          redis.call('PEXPIRE', KEYS[1], ttl)
          redis.call('PUBLISH', channel, payload(holder, s, ttl, new))
          return s
        end
        local function live_head(now)
          purge(now)
          local head = redis.call('ZRANGE', KEYS[3], 0, 0)
          return head[1]
        end
        local function promote(holder, channel)
          local ask = redis.call('HGET', KEYS[5], holder) or '0:0'
          local colon = string.find(ask, ':', 1, true)
          local ttl = string.sub(ask, 1, colon - 1)
          local new = false
          if string.sub(ask, colon + 1, colon + 1) == '1' then new = string.sub(ask, colon + 2) end
          leave_queue(holder)
          local s = start_term(holder, ttl, new, channel)
          local has = 0
          if new then has = 1 end
          return {holder, s, has, new or '', ttl, tonumber(ttl)}
        end

        """

    /// Takes or renews a lease, in queue order. ARGV: holder, ttl ms, has metadata, metadata, change channel,
    /// waiting (`1`/`0`). Returns `{1, token}` (acquired, or the holder's own term renewed) or `{0, holder, token,
    /// has metadata, metadata, ttl ms, pttl}` (held by another: the leader, or the head of the queue, whose term
    /// this script has just started). A waiting acquire that is refused joins the queue, or keeps its place there
    /// for another ttl.
    static let acquire = RedisScript(
        name: "queuedAcquire",
        source: functions + """
            local holder, ttl, channel, waiting = ARGV[1], ARGV[2], ARGV[5], ARGV[6] == '1'
            local new = false
            if ARGV[3] == '1' then new = ARGV[4] end
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'metadata', 'ttl')
            if cur[1] == holder then
              redis.call('HSET', KEYS[1], 'ttl', ttl)
              if new then redis.call('HSET', KEYS[1], 'metadata', new) else redis.call('HDEL', KEYS[1], 'metadata') end
              redis.call('PEXPIRE', KEYS[1], ttl)
              if cur[3] ~= new then redis.call('PUBLISH', channel, cur[2]) end
              return {1, cur[2]}
            end
            local now = now_ms()
            if cur[1] then
              if waiting then join(holder, ttl, new, now) end
              local has = 0
              if cur[3] then has = 1 end
              return {0, cur[1], cur[2], has, cur[3] or '', cur[4] or '0', redis.call('PTTL', KEYS[1])}
            end
            local head = live_head(now)
            if head and head ~= holder then
              if waiting then join(holder, ttl, new, now) end
              local leader = promote(head, channel)
              return {0, leader[1], leader[2], leader[3], leader[4], leader[5], leader[6]}
            end
            if head then leave_queue(holder) end
            return {1, start_term(holder, ttl, new, channel)}
            """
    )

    /// Ends a term and hands the key to the head of the queue, if any. ARGV: holder, token, change channel.
    /// Returns 1, or 0 if the key is not in that term.
    static let release = RedisScript(
        name: "queuedRelease",
        source: functions + """
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
            if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
            redis.call('DEL', KEYS[1])
            local head = live_head(now_ms())
            if head then
              promote(head, ARGV[3])
            else
              redis.call('PUBLISH', ARGV[3], 'q1 F ' .. (redis.call('GET', KEYS[2]) or '0'))
            end
            return 1
            """
    )

    /// Takes a holder out of the queue (a term it holds is left alone). ARGV: holder. Returns 1.
    static let leave = RedisScript(
        name: "queuedLeave",
        source: functions + """
            leave_queue(ARGV[1])
            return 1
            """
    )

    /// A change feed's read: the current term, after handing a free key to the head of the queue, if any. ARGV:
    /// change channel. Returns `{1, holder, token, has metadata, metadata, ttl ms, pttl}`, or `{0, last token}`
    /// for a free key with nobody waiting.
    static let look = RedisScript(
        name: "queuedLook",
        source: functions + """
            local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'metadata', 'ttl')
            if cur[1] then
              local has = 0
              if cur[3] then has = 1 end
              return {1, cur[1], cur[2], has, cur[3] or '', cur[4] or '0', redis.call('PTTL', KEYS[1])}
            end
            local head = live_head(now_ms())
            if head then
              local leader = promote(head, ARGV[1])
              return {1, leader[1], leader[2], leader[3], leader[4], leader[5], leader[6]}
            end
            return {0, redis.call('GET', KEYS[2]) or '0'}
            """
    )
}
