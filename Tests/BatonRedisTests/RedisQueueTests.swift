@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Synchronization
import Testing

@testable import BatonRedis

/// The queue of waiting candidates on one Redis server: arrival order, a release that hands the key to the next
/// in line, a free key that goes to the head, waiters that stop asking, and feeds that learn a term from its
/// message.
@Suite struct RedisQueueTests {
    static let long = Duration.seconds(30)

    private func acquired(_ result: AcquireResult, _ what: Comment) throws -> Lease {
        guard case .acquired(let lease) = result else {
            Issue.record("\(what): \(result)")
            throw QueueTestFailure()
        }
        return lease
    }

    private func held(_ result: AcquireResult, _ what: Comment) throws -> LeaderInfo {
        guard case .held(let leader) = result else {
            Issue.record("\(what): \(result)")
            throw QueueTestFailure()
        }
        return leader
    }

    @Test func releasesHandTheKeyOnInArrivalOrder() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { store, _ in
            #expect(store.queuesWaiters)
            let key = unique("queue-order")
            var lease = try acquired(
                try await store.acquire(key: key, holder: "first", ttl: Self.long, metadata: nil), "first")
            for holder in ["a", "b", "c"] {
                let leader = try held(
                    try await store.acquire(key: key, holder: holder, ttl: Self.long, metadata: holder, waiting: true),
                    "\(holder) waits")
                #expect(leader.holder == "first")
            }
            // An acquire that does not wait is refused and leaves no place in the queue.
            _ = try held(try await store.acquire(key: key, holder: "x", ttl: Self.long, metadata: nil), "x")
            for next in ["a", "b", "c"] {
                try await store.release(lease)
                // The release started the next one's term, with the metadata of its last waiting acquire.
                let current = try #require(try await store.current(key: key))
                #expect(current.holder == next)
                #expect(current.metadata == next)
                #expect(current.token > lease.token)
                // Its acquire renews that term.
                let taken = try acquired(
                    try await store.acquire(key: key, holder: next, ttl: Self.long, metadata: next, waiting: true),
                    "\(next) takes its turn")
                #expect(taken.token == current.token)
                lease = taken
            }
            try await store.release(lease)
            #expect(try await store.current(key: key) == nil)
            let last = try acquired(
                try await store.acquire(key: key, holder: "x", ttl: Self.long, metadata: nil), "x after the queue")
            #expect(last.token > lease.token)
            try await store.release(last)
        }
    }

    @Test func aFreeKeyGoesToTheHeadOfTheQueue() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url, configuration: unprobedRedis) { store, _ in
            let key = unique("queue-free")
            let short = try acquired(
                try await store.acquire(key: key, holder: "leader", ttl: .milliseconds(300), metadata: nil), "leader")
            _ = try held(
                try await store.acquire(key: key, holder: "head", ttl: Self.long, metadata: nil, waiting: true),
                "head waits")
            // The leader's term expires on the server; nobody released it.
            try await Task.sleep(for: .milliseconds(500))
            // A late candidate finds the key free, but the head of the queue was first: it gets the key.
            let leader = try held(
                try await store.acquire(key: key, holder: "late", ttl: Self.long, metadata: nil, waiting: true),
                "a late candidate")
            #expect(leader.holder == "head")
            #expect(leader.token > short.token)
            let head = try acquired(
                try await store.acquire(key: key, holder: "head", ttl: Self.long, metadata: nil, waiting: true),
                "the head")
            #expect(head.token == leader.token)
            // The late one queued behind it.
            try await store.release(head)
            #expect(try await store.current(key: key)?.holder == "late")
            let late = try acquired(
                try await store.acquire(key: key, holder: "late", ttl: Self.long, metadata: nil), "late")
            try await store.release(late)
        }
    }

    @Test func aWaiterThatStopsAskingLeavesTheQueueWithinItsTTL() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url, configuration: unprobedRedis) { store, _ in
            let key = unique("queue-leaves")
            let lease = try acquired(
                try await store.acquire(key: key, holder: "leader", ttl: Self.long, metadata: nil), "leader")
            _ = try held(
                try await store.acquire(
                    key: key, holder: "gone", ttl: .milliseconds(200), metadata: nil, waiting: true),
                "a waiter that will stop asking")
            _ = try held(
                try await store.acquire(key: key, holder: "stays", ttl: Self.long, metadata: nil, waiting: true),
                "a waiter that stays")
            try await Task.sleep(for: .milliseconds(400))
            try await store.release(lease)
            #expect(try await store.current(key: key)?.holder == "stays")
            let stays = try acquired(
                try await store.acquire(key: key, holder: "stays", ttl: Self.long, metadata: nil), "stays")
            try await store.release(stays)
        }
    }

    /// Followers in another store instance see the release's hand-over from its message alone: the feed's reads
    /// of the server stay at the first one each.
    @Test func feedsLearnTheNextTermFromTheReleaseMessage() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { store, _ in
            try await withRedisStore(url) { other, driver in
                let key = unique("queue-feed")
                let lease = try acquired(
                    try await store.acquire(key: key, holder: "leader", ttl: Self.long, metadata: nil), "leader")
                _ = try held(
                    try await store.acquire(key: key, holder: "next", ttl: Self.long, metadata: "m", waiting: true),
                    "next waits")
                let recorder = try ObservationRecorder(other, key: key, count: 5)
                defer { recorder.cancel() }
                #expect(try await eventually { recorder.leaders.count == 5 })
                let readsBefore = driver.queueLooks
                try await store.release(lease)
                #expect(try await eventually { recorder.leaders.count == 10 })
                let last = Array(recorder.leaders.suffix(5))
                for info in last {
                    #expect(info?.holder == "next")
                    #expect(info?.metadata == "m")
                    #expect((info?.token ?? 0) > lease.token)
                }
                #expect(driver.queueLooks == readsBefore, "the feeds read the server after the release")
            }
        }
    }

    /// A waiting candidate handed the key takes its term from the release's message, without a request: promised
    /// until its last refused ask plus the ttl, so less than a full ttl. A message naming a term older than one its
    /// store has since seen in an answer (a late or stale message) is never taken.
    @Test func aHandedTermIsTakenFromItsMessageButNeverFromAStaleOne() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { store, driver in
            try await withRedisStore(url) { other, _ in
                let key = unique("queue-handed")
                let first = try acquired(
                    try await other.acquire(key: key, holder: "a", ttl: Self.long, metadata: nil), "a")
                _ = try held(
                    try await store.acquire(key: key, holder: "b", ttl: Self.long, metadata: nil, waiting: true),
                    "b waits")
                // b's store follows the key, as its elector's would.
                let recorder = try ObservationRecorder(store, key: key, count: 1)
                defer { recorder.cancel() }
                #expect(try await eventually { recorder.leaders.count == 1 })
                try await other.release(first)
                #expect(try await eventually { driver.payloads.latest(key)?.state?.leader?.holder == "b" })
                let taken = try acquired(
                    try await store.acquire(key: key, holder: "b", ttl: Self.long, metadata: nil, waiting: true),
                    "b takes its turn")
                #expect(taken.ttl < Self.long && taken.ttl > Self.long / 2, "not taken from the message: \(taken.ttl)")
                #expect(taken.token > first.token)
                #expect(try await other.current(key: key)?.token == taken.token)

                // b gives the term back, c takes the key, and b, asking again, is refused by c.
                try await store.release(taken)
                let third = try acquired(
                    try await other.acquire(key: key, holder: "c", ttl: Self.long, metadata: nil), "c")
                #expect(
                    try held(
                        try await store.acquire(key: key, holder: "b", ttl: Self.long, metadata: nil, waiting: true),
                        "b waits again"
                    ).holder == "c")
                // A message naming b's old term, as a late one would leave it, is not taken.
                driver.payloads.record(
                    key, .term(LeaderInfo(holder: "b", token: taken.token, metadata: nil, ttl: Self.long)))
                let again = try await store.acquire(key: key, holder: "b", ttl: Self.long, metadata: nil, waiting: true)
                #expect(try held(again, "b after the stale message").holder == "c")
                try await store.leaveQueue(key: key, holder: "b")
                try await other.release(third)
            }
        }
    }

    @Test func payloadsParse() {
        #expect(RedisFeedPayload.parse("q1 F 17") == .free(lastToken: 17))
        #expect(
            RedisFeedPayload.parse("q1 T 18 1500 1 5 a b c{\"x\": 1}")
                == .term(
                    LeaderInfo(
                        holder: "a b c", token: 18, metadata: "{\"x\": 1}", ttl: .milliseconds(1500),
                        remaining: .milliseconds(1500))))
        #expect(
            RedisFeedPayload.parse("q1 T 18 1500 0 2 é")
                == .term(
                    LeaderInfo(
                        holder: "é", token: 18, metadata: nil,
                        ttl: .milliseconds(1500), remaining: .milliseconds(1500))))
        for bad in ["17", "0", "q1 T 18 1500 0 9 short", "q1 X 1", "q1 F x", "q1 T 18 1500 0 1"] {
            #expect(RedisFeedPayload.parse(bad) == nil, "\(bad)")
        }
    }
}

private struct QueueTestFailure: Error {}
