import Baton
import BatonTestKit
import Synchronization
import Testing

@testable import BatonEtcd

/// The queue of etcd's election recipe: candidates lead in arrival order, and a waiting candidate keeps its
/// place between tries.
@Suite struct EtcdQueueTests {
    /// 100 candidates queue behind a leader; each tries when the change feed reports no leader (and once a second
    /// besides). Released one by one, they lead in exactly the order they arrived, each with a larger token.
    @Test func hundredWaitingCandidatesLeadInArrivalOrder() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        let key = unique("fifo")
        let ttl = Duration.seconds(60)
        let holders = (0..<101).map { "candidate-\($0)" }
        let first = try #require(try await store.acquire(key: key, holder: holders[0], ttl: ttl, metadata: nil).lease)
        for holder in holders.dropFirst() {
            let answer = try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: nil)
            guard case .held(let leader) = answer else {
                Issue.record("\(holder) was not queued behind \(holders[0]): \(answer)")
                return
            }
            #expect(leader.holder == holders[0] && leader.token == first.token)
        }
        let terms = Shared<[(String, FencingToken)]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            let subscribed = Shared(0)
            for holder in holders.dropFirst() {
                let changes = try store.changes(key: key)
                group.addTask {
                    subscribed.update { $0 += 1 }
                    // A candidate tries when the feed reports no leader, and besides once a second: the order
                    // under test is the queue's, whoever wakes first.
                    let (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                    let feed = Task {
                        for try await leader in changes where leader == nil { wake.yield() }
                    }
                    let ticker = Task {
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(1))
                            wake.yield()
                        }
                    }
                    defer {
                        feed.cancel()
                        ticker.cancel()
                    }
                    for await _ in wakeUps {
                        guard
                            let lease = try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: nil).lease
                        else {
                            continue
                        }
                        terms.update { $0.append((holder, lease.token)) }
                        try await store.release(lease)
                        return
                    }
                }
            }
            #expect(try await eventually { subscribed.value == 100 })
            try await store.release(first)
            try await group.waitForAll()
        }
        let order = terms.value
        #expect(order.map(\.0) == Array(holders.dropFirst()), "leaders in this order: \(order.map(\.0))")
        let tokens = [first.token] + order.map(\.1)
        #expect(zip(tokens, tokens.dropFirst()).allSatisfy { $0 < $1 }, "tokens not rising: \(tokens)")
        #expect(try await store.current(key: key) == nil)
        try await store.close()
    }

    /// A candidate that stops trying leaves the queue: once its last try is a ttl old and nothing in its store
    /// watches the key, its key is removed, so it does not block the candidates behind it.
    @Test func abandonedCandidateLeavesTheQueue() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        let other = try EtcdLeaseStore(url)
        let key = unique("abandon")
        let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
        #expect(try await other.acquire(key: key, holder: "quitter", ttl: .seconds(1), metadata: nil).lease == nil)
        let late = try await other.acquire(key: key, holder: "late", ttl: .seconds(60), metadata: nil)
        #expect(late.lease == nil)
        // "late" keeps trying; "quitter" stops. After its ttl the store removes its key.
        try await Task.sleep(for: .seconds(2.5))
        try await store.release(lease)
        let next = try #require(
            try await other.acquire(key: key, holder: "late", ttl: .seconds(60), metadata: nil).lease)
        #expect(next.token > lease.token)
        try await other.release(next)
        try await store.close()
        try await other.close()
    }
    /// A graceful handover is one transaction of the releasing leader: every other store sees the successor lead at
    /// once, the successor's own store still tells its subscribers "no leader" (so its elector acquires), and that
    /// acquire takes the term with the successor's place in the queue as the token.
    @Test("a handed-over term is promised what the last keep-alive ensures, and not less than half the ttl")
    func sureTermOfAHandedOverCandidate() {
        let now = ContinuousClock.now
        func campaign(keptAliveAgo ago: Duration, ttlSeconds: Int64) -> EtcdLeaseStore.Campaign {
            EtcdLeaseStore.Campaign(
                lease: 1, ttlSeconds: ttlSeconds, revision: 2, leading: false, metadata: nil, lastTry: now,
                lastKeepAlive: now - ago)
        }
        let sure = EtcdLeaseStore.sureTerm
        #expect(sure(campaign(keptAliveAgo: .seconds(2), ttlSeconds: 10), .seconds(10), now) == .seconds(8))
        #expect(sure(campaign(keptAliveAgo: .zero, ttlSeconds: 10), .seconds(10), now) == .seconds(10))
        // Never more than asked (etcd's whole seconds round a ttl up).
        #expect(sure(campaign(keptAliveAgo: .zero, ttlSeconds: 2), .milliseconds(1500), now) == .milliseconds(1500))
        // Half the ttl or less left: a keep-alive starts the term instead.
        #expect(sure(campaign(keptAliveAgo: .seconds(5), ttlSeconds: 10), .seconds(10), now) == nil)
        #expect(sure(campaign(keptAliveAgo: .seconds(12), ttlSeconds: 10), .seconds(10), now) == nil)
    }

    @Test func releaseHandsTheKeyToTheNextCandidate() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        let successorStore = try EtcdLeaseStore(url)
        let observerStore = try EtcdLeaseStore(url)
        let key = unique("handover")
        let lease = try #require(
            try await leaderStore.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
        #expect(try await successorStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil).lease == nil)
        // Both stores watch the key, as electors' stores do; their first reads show the whole queue.
        var leaderFeed = try leaderStore.changes(key: key).makeAsyncIterator()
        var successorFeed = try successorStore.changes(key: key).makeAsyncIterator()
        #expect(try await leaderFeed.next()??.holder == "a")
        #expect(try await successorFeed.next()??.holder == "a")
        // The handover needs the leader's store to have an up-to-date view of the queue.
        let deadline = ContinuousClock.now + .seconds(10)
        while !leaderStore.hasFreshView(of: key), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(leaderStore.hasFreshView(of: key), "the leader's store has no fresh view of the queue")

        try await leaderStore.release(lease)
        let seen = try await observerStore.current(key: key)
        #expect(
            seen?.holder == "b",
            "another store sees the successor lead right after the release: \(String(describing: seen))")
        #expect(try await successorFeed.next() == .some(nil), "the successor's own store reports no leader")
        // With a fresh view (under load the watch event may have come while a read was in flight, and the
        // successor's store reads once more), the successor's store knows of the handover without asking etcd.
        let fresh = ContinuousClock.now + .seconds(10)
        while !successorStore.hasFreshView(of: key), ContinuousClock.now < fresh {
            try await Task.sleep(for: .milliseconds(10))
        }
        let next = try #require(
            try await successorStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil).lease)
        #expect(next.token == seen?.token)
        #expect(next.token > lease.token)
        // Started without a request: the term lasts as long as the last keep-alive (here, the grant) ensures,
        // which is less than a full ttl from now, and more than half of it.
        #expect(next.ttl < .seconds(60) && next.ttl > .seconds(30), "the term's promise: \(next.ttl)")
        #expect(try await successorFeed.next()??.holder == "b", "after its acquire the successor's store reports it")
        try await successorStore.release(next)
        try await leaderStore.close()
        try await successorStore.close()
        try await observerStore.close()
    }

    @Test("a handed-over candidate whose lease was not kept alive lately starts its term with a keep-alive")
    func staleHandedOverCandidateStartsWithAKeepAlive() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        // No maintenance within the test: the successor's lease is kept alive only by its grant.
        var lazy = EtcdLeaseStore.Configuration()
        lazy.maintenanceInterval = .seconds(60)
        let successorStore = try EtcdLeaseStore(url: try StoreURL(url), configuration: lazy)
        let key = unique("stale-handover")
        let ttl = Duration.seconds(2)
        let lease = try #require(try await leaderStore.acquire(key: key, holder: "a", ttl: ttl, metadata: nil).lease)
        #expect(try await successorStore.acquire(key: key, holder: "b", ttl: ttl, metadata: nil).lease == nil)
        var successorFeed = try successorStore.changes(key: key).makeAsyncIterator()
        var leaderFeed = try leaderStore.changes(key: key).makeAsyncIterator()
        #expect(try await successorFeed.next()??.holder == "a")
        #expect(try await leaderFeed.next()??.holder == "a")
        let fresh = ContinuousClock.now + .seconds(10)
        while !(leaderStore.hasFreshView(of: key) && successorStore.hasFreshView(of: key)), ContinuousClock.now < fresh
        {
            try await Task.sleep(for: .milliseconds(10))
        }
        // More than half the ttl since the successor's grant: its store cannot promise the term without asking.
        try await Task.sleep(for: .milliseconds(1100))
        try await leaderStore.release(lease)
        let observer = try EtcdLeaseStore(url)
        let observed = try await observer.current(key: key)
        try await observer.close()
        #expect(observed?.holder == "b", "the release handed the key over: \(String(describing: observed))")
        #expect(try await successorFeed.next() == .some(nil))
        let next = try #require(try await successorStore.acquire(key: key, holder: "b", ttl: ttl, metadata: nil).lease)
        #expect(next.ttl == ttl, "a keep-alive starts a whole term")
        #expect(next.token > lease.token)
        try await successorStore.release(next)
        try await leaderStore.close()
        try await successorStore.close()
    }
}
