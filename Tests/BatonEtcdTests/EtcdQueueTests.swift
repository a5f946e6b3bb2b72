@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Foundation
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
        try await withRunning([store]) { try await hundredCandidates(store) }
    }

    private func hundredCandidates(_ store: EtcdLeaseStore) async throws {
        let key = unique("fifo")
        let ttl = Duration.seconds(60)
        let holders = (0..<101).map { "candidate-\($0)" }
        let first = try #require(try await store.acquire(key: key, holder: holders[0], ttl: ttl, metadata: nil).lease)
        for holder in holders.dropFirst() {
            let answer = try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: nil, waiting: true)
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
                    // A candidate tries when the feed reports no leader or names it (the next in line), as an
                    // elector does, and besides once a second (a fallback wake-up, as an elector's poll is: no
                    // decision waits for it): the order under test is the queue's, whoever wakes first.
                    let (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                    let feed = Task {
                        for try await leader in changes where leader == nil || leader?.holder == holder {
                            wake.yield()
                        }
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
                            let lease = try await store.acquire(
                                key: key, holder: holder, ttl: ttl, metadata: nil, waiting: true
                            ).lease
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
    }

    /// A waiting candidate's lease is kept alive only by its holder's asks, through whichever store instance: one
    /// that goes on asking (through two instances in turn) keeps its place past its ttl although a store watches
    /// the key, and one that stops asking leaves the queue within about its ttl, by etcd's own expiry.
    @Test func abandonedCandidateLeavesTheQueue() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        let other = try EtcdLeaseStore(url)
        let key = unique("abandon")
        try await withRunning([store, other]) {
            let lease = try #require(
                try await store.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            // Someone watches the key through the store the quitter asked through: that keeps no one's place.
            var feed = try other.changes(key: key).makeAsyncIterator()
            #expect(try await feed.next()??.holder == "a")
            let ttl = Duration.seconds(1)
            for store in [other, store] {
                for holder in ["quitter", "stayer"] {
                    let answer = try await store.acquire(
                        key: key, holder: holder, ttl: ttl, metadata: nil, waiting: true)
                    #expect(answer.lease == nil)
                }
            }
            let started = ContinuousClock.now
            while ContinuousClock.now - started < .seconds(4) {
                try await Task.sleep(for: .milliseconds(300))
                let answer = try await other.acquire(key: key, holder: "stayer", ttl: ttl, metadata: nil, waiting: true)
                #expect(answer.lease == nil)
            }
            let holders = try await store.readElection(key).compactMap(\.holder)
            #expect(holders == ["a", "stayer"], "the queue 4 s after the quitter's last ask: \(holders)")
            try await store.release(lease)
            let next = try #require(
                try await store.acquire(key: key, holder: "stayer", ttl: ttl, metadata: nil, waiting: true).lease)
            #expect(next.token > lease.token)
            try await other.release(next)
        }
    }

    /// A non-waiting acquire that is refused revokes its lease before it answers: its key is not in the queue.
    @Test func refusedAcquireThatDoesNotWaitLeavesNoKey() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        let key = unique("no-trace")
        try await withRunning([store]) {
            let lease = try #require(
                try await store.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            #expect(try await store.acquire(key: key, holder: "asker", ttl: .seconds(60), metadata: nil).lease == nil)
            #expect(try await store.readElection(key).compactMap(\.holder) == ["a"])
            try await store.release(lease)
        }
    }

    /// A graceful handover is one transaction of the releasing leader: every other store sees the successor lead at
    /// once, the successor's own store still tells its subscribers "no leader" (so its elector acquires), and that
    /// acquire takes the term with the successor's place in the queue as the token.
    @Test func releaseHandsTheKeyToTheNextCandidate() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        let successorStore = try EtcdLeaseStore(url)
        let observerStore = try EtcdLeaseStore(url)
        try await withRunning([leaderStore, successorStore, observerStore]) {
            try await handOver(leaderStore, successorStore, observerStore)
        }
    }

    private func handOver(
        _ leaderStore: EtcdLeaseStore, _ successorStore: EtcdLeaseStore, _ observerStore: EtcdLeaseStore
    ) async throws {
        let key = unique("handover")
        let lease = try #require(
            try await leaderStore.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
        #expect(
            try await successorStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
                .lease
                == nil)
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
        #expect(
            try await successorFeed.next()??.holder == "b",
            "the successor's own store names it the next leader, which wakes it (and only it)")
        // With a fresh view (under load the watch event may have come while a read was in flight, and the
        // successor's store reads once more), the successor's store knows of the handover without asking etcd.
        let fresh = ContinuousClock.now + .seconds(10)
        while !successorStore.hasFreshView(of: key), ContinuousClock.now < fresh {
            try await Task.sleep(for: .milliseconds(10))
        }
        let next = try #require(
            try await successorStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
                .lease)
        #expect(next.token == seen?.token)
        #expect(next.token > lease.token)
        // Started without a request: the term lasts as long as the last keep-alive (here, the grant) ensures,
        // which is less than a full ttl from now, and more than half of it.
        #expect(next.ttl < .seconds(60) && next.ttl > .seconds(30), "the term's promise: \(next.ttl)")
        #expect(try await successorStore.current(key: key)?.token == next.token, "after its acquire it leads")
        try await successorStore.release(next)
    }

    /// A leader follows no change feed, so its store seldom watches the key: its release reads the queue to find
    /// the successor, and still hands over (the successor's term starts without a write of its own, promised for
    /// what its last keep-alive ensures rather than a full ttl).
    @Test func releaseHandsOverWhenTheLeadersStoreDoesNotWatchTheKey() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        let successorStore = try EtcdLeaseStore(url)
        // As a store that leads more keys than it watches.
        leaderStore.limitHeldWatches(to: 0)
        try await withRunning([leaderStore, successorStore]) {
            let key = unique("handover-unwatched")
            let lease = try #require(
                try await leaderStore.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            _ = try await successorStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
            var successorFeed = try successorStore.changes(key: key).makeAsyncIterator()
            #expect(try await successorFeed.next()??.holder == "a")
            #expect(!leaderStore.hasFreshView(of: key))
            try await leaderStore.release(lease)
            #expect(try await successorFeed.next()??.holder == "b")
            let fresh = ContinuousClock.now + .seconds(10)
            while !successorStore.hasFreshView(of: key), ContinuousClock.now < fresh {
                try await Task.sleep(for: .milliseconds(10))
            }
            let next = try #require(
                try await successorStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
                    .lease)
            #expect(next.token > lease.token)
            #expect(next.ttl < .seconds(60), "the successor took the key with a write: \(next.ttl)")
            try await successorStore.release(next)
        }
    }

    /// Unwatched and with nobody waiting, a release is one transaction that leaves (its compare: nobody joined the
    /// queue after the term). A key of another client created behind the term fails that compare: the release then
    /// reads the queue in the same transaction, finds no Baton candidate to hand to, and still leaves.
    @Test func anUnwatchedReleaseWithNobodyWaitingLeaves() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        let other = try EtcdLeaseStore(url)
        store.limitHeldWatches(to: 0)
        try await withRunning([store, other]) {
            let key = unique("unwatched-release")
            let first = try #require(
                try await store.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            try await store.release(first)
            #expect(try await store.readElection(key).isEmpty, "the term's keys are gone")
            #expect(try await other.current(key: key) == nil)

            let second = try #require(
                try await store.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            #expect(second.token > first.token)
            // A candidate of another client (as `etcdctl elect` writes one), without a lease.
            let foreign = EtcdKeyLayout.electionPrefix(key) + Data("foreign".utf8)
            _ = try await store.txn(
                "test: a foreign candidate", compare: [], success: [.put(foreign, value: Data("x".utf8), lease: 0)])
            try await store.release(second)
            #expect(try await store.readElection(key).compactMap(\.holder).isEmpty, "a's keys are gone")
            #expect(try await store.readElection(key).count == 1, "the foreign candidate stays")
        }
    }

    /// A candidate that takes a free key is alone in its queue: its store's watch of the key (for the release)
    /// starts right after the put, from that queue, and is up to date once it is set up, without reading the
    /// queue; the events after it keep it so, and one it cannot apply (a candidate joining) makes it read.
    @Test func aWatchStartedForATermThatTookAFreeKeyNeedsNoRead() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let store = try EtcdLeaseStore(url)
        let other = try EtcdLeaseStore(url)
        try await withRunning([store, other]) {
            let key = unique("seeded-watch")
            let lease = try #require(
                try await store.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: "m").lease)
            #expect(try await eventually { store.hasFreshView(of: key) })
            #expect(store.queueReads(of: key) == 0, "the watch read the queue")
            let view = try #require(store.freshView(of: key))
            #expect(view.map(\.holder) == ["a"] && view.first?.revision == lease.token && view.first?.value == "m")
            #expect(view.first.map { !$0.waiting } == true)

            _ = try await other.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
            #expect(try await eventually { store.freshView(of: key)?.compactMap(\.holder) == ["a", "b"] })
            try await store.release(lease)
            #expect(try await other.current(key: key)?.holder == "b", "handed over on the watch's view")
        }
    }

    /// A leader's store keeps the key's watch running once its holder's change feed stops, so that its release
    /// knows the queue without reading it; the release lets the watch go.
    @Test func aLeadersStoreHoldsTheWatchOfTheKeyItLeads() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let firstStore = try EtcdLeaseStore(url)
        let leaderStore = try EtcdLeaseStore(url)
        try await withRunning([firstStore, leaderStore]) {
            let key = unique("held-watch")
            let first = try #require(
                try await firstStore.acquire(key: key, holder: "a", ttl: .seconds(60), metadata: nil).lease)
            _ = try await leaderStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
            // a took the free key: its store watches the key from then on, and sees b join.
            #expect(try await eventually { firstStore.freshView(of: key)?.count == 2 })
            let named = Mutex<String?>(nil)
            let feed = try leaderStore.observe(key: key) { observation in
                if case .leader(let info) = observation { named.withLock { $0 = info?.holder } }
            }
            #expect(try await eventually { named.withLock { $0 } == "a" && leaderStore.hasFreshView(of: key) })
            try await firstStore.release(first)
            #expect(try await eventually { named.withLock { $0 } == "b" })
            let lease = try #require(
                try await leaderStore.acquire(key: key, holder: "b", ttl: .seconds(60), metadata: nil, waiting: true)
                    .lease)
            // The holder leads: its feed stops, the watch goes on.
            feed.cancel()
            #expect(leaderStore.hasFreshView(of: key))
            _ = try await firstStore.acquire(key: key, holder: "c", ttl: .seconds(60), metadata: nil, waiting: true)
            #expect(try await eventually { leaderStore.freshView(of: key)?.count == 2 })
            try await leaderStore.release(lease)
            #expect(!leaderStore.hasFreshView(of: key), "the released key's watch goes on")
            // Handed over: c is named leader before it acquires (a candidate not handed the key is not).
            #expect(try await firstStore.current(key: key)?.holder == "c")
            let third = try #require(
                try await firstStore.acquire(key: key, holder: "c", ttl: .seconds(60), metadata: nil).lease)
            #expect(third.token > lease.token)
            try await firstStore.release(third)
        }
    }

    /// The watch tells the observers of its key (a process's waiting electors) about a handover starting with the
    /// one that observes for the new head of the queue, whatever the order it keeps them in.
    @Test func theNewHeadsObserverIsToldFirst() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        let waitersStore = try EtcdLeaseStore(url)
        try await withRunning([leaderStore, waitersStore]) {
            let key = unique("head-first")
            var lease = try #require(
                try await leaderStore.acquire(key: key, holder: "leader", ttl: .seconds(60), metadata: nil).lease)
            let holders = (0..<20).map { "w\($0)" }
            for holder in holders {
                _ = try await waitersStore.acquire(
                    key: key, holder: holder, ttl: .seconds(60), metadata: nil, waiting: true)
            }
            // Per head of the queue, the observers told it, in the order they were told.
            let told = Mutex<[String: [String]]>([:])
            let feeds = try holders.reversed().map { holder in
                try ObserverHolder.$current.withValue(holder) {
                    try waitersStore.observe(key: key) { observation in
                        guard case .leader(let info?) = observation else { return }
                        told.withLock { $0[info.holder, default: []].append(holder) }
                    }
                }
            }
            defer { for feed in feeds { feed.cancel() } }
            #expect(try await eventually { told.withLock { $0["leader"]?.count } == holders.count })
            // Five handovers, each to the next in line: its observer is told first every time.
            for next in holders.prefix(5) {
                try await (lease.holder == "leader" ? leaderStore : waitersStore).release(lease)
                #expect(try await eventually { told.withLock { $0[next]?.count } == holders.count })
                #expect(told.withLock { $0[next]?.first } == next, "told in the order \(told.withLock { $0[next] })")
                lease = try #require(
                    try await waitersStore.acquire(key: key, holder: next, ttl: .seconds(60), metadata: nil).lease)
            }
            try await waitersStore.release(lease)
            for holder in holders.dropFirst(5) { try await waitersStore.leaveQueue(key: key, holder: holder) }
        }
    }

    @Test("a handed-over candidate whose lease was not kept alive lately starts its term with a keep-alive")
    func staleHandedOverCandidateStartsWithAKeepAlive() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let leaderStore = try EtcdLeaseStore(url)
        // The successor's store runs on a clock of the test's: no upkeep within the test, so the successor's
        // lease is kept alive only by its grant, and the time since then is the test's to set.
        let clock = ManualClock()
        var lazy = EtcdLeaseStore.Configuration()
        lazy.maintenanceInterval = .seconds(60)
        let successorStore = try EtcdLeaseStore(url: try StoreURL(url), configuration: lazy, clock: clock)
        try await withRunning([leaderStore, successorStore]) {
            try await staleHandover(leaderStore, successorStore, clock: clock, url: url)
        }
    }

    private func staleHandover(
        _ leaderStore: EtcdLeaseStore, _ successorStore: EtcdLeaseStore, clock: ManualClock, url: String
    ) async throws {
        let key = unique("stale-handover")
        let ttl = Duration.seconds(2)
        let lease = try #require(try await leaderStore.acquire(key: key, holder: "a", ttl: ttl, metadata: nil).lease)
        #expect(
            try await successorStore.acquire(key: key, holder: "b", ttl: ttl, metadata: nil, waiting: true).lease == nil
        )
        var successorFeed = try successorStore.changes(key: key).makeAsyncIterator()
        var leaderFeed = try leaderStore.changes(key: key).makeAsyncIterator()
        #expect(try await successorFeed.next()??.holder == "a")
        #expect(try await leaderFeed.next()??.holder == "a")
        let fresh = ContinuousClock.now + .seconds(10)
        while !(leaderStore.hasFreshView(of: key) && successorStore.hasFreshView(of: key)), ContinuousClock.now < fresh
        {
            try await Task.sleep(for: .milliseconds(10))
        }
        // More than half the ttl since the successor's grant, on its store's clock: the store cannot promise the
        // term without asking (etcd, on its own clock, still has the lease).
        clock.advance(by: .milliseconds(1100))
        try await leaderStore.release(lease)
        let observer = try EtcdLeaseStore(url)
        let observed = try await withRunning([observer]) { try await observer.current(key: key) }
        #expect(observed?.holder == "b", "the release handed the key over: \(String(describing: observed))")
        #expect(try await successorFeed.next()??.holder == "b", "the successor is named: its turn")
        let next = try #require(
            try await successorStore.acquire(key: key, holder: "b", ttl: ttl, metadata: nil, waiting: true).lease)
        #expect(next.ttl == ttl, "a keep-alive starts a whole term")
        #expect(next.token > lease.token)
        try await successorStore.release(next)
    }
}
