@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Testing

@testable import BatonSQLite

/// The queue of waiting candidates in `baton_waiters`, on the manual clock, through two store instances (two
/// processes; arrival order is a conformance check): an expired key that goes to the head, waiters that
/// stop asking, and a feed that names the next leader after an expiry.
@Suite struct SQLiteQueueTests {
    static let long = Duration.seconds(30)

    @Test func anExpiredKeyGoesToTheHeadOfTheQueue() async throws {
        let clock = ManualClock()
        try await withTwoStores(clock: clock) { a, b throws in
            let key = unique("queue-expired")
            let first = try #require(try await a.acquire(key: key, holder: "leader", ttl: .seconds(1)).lease)
            let waiting = try await b.acquire(key: key, holder: "head", ttl: Self.long, metadata: nil, waiting: true)
            #expect(waiting.lease == nil)
            clock.advance(by: .seconds(2))
            // A late candidate finds the key expired, but the head was first: the head gets it.
            let late = try await a.acquire(key: key, holder: "late", ttl: Self.long, metadata: nil, waiting: true)
            guard case .held(let leader) = late else {
                Issue.record("the late candidate got the key: \(late)")
                return
            }
            #expect(leader.holder == "head")
            #expect(leader.token == first.token + 1)
            let head = try #require(
                try await b.acquire(key: key, holder: "head", ttl: Self.long, metadata: nil, waiting: true).lease)
            #expect(head.token == leader.token)
            try await b.release(head)
            #expect(try await a.current(key: key)?.holder == "late")
        }
    }

    @Test func aWaiterThatStopsAskingLeavesTheQueueWithinItsTTL() async throws {
        let clock = ManualClock()
        try await withTwoStores(clock: clock) { a, b throws in
            let key = unique("queue-leaves")
            let lease = try #require(try await a.acquire(key: key, holder: "leader", ttl: .seconds(60)).lease)
            _ = try await b.acquire(key: key, holder: "gone", ttl: .seconds(1), metadata: nil, waiting: true)
            _ = try await b.acquire(key: key, holder: "stays", ttl: .seconds(60), metadata: nil, waiting: true)
            // A place lasts one and a half ttl after the last waiting acquire.
            clock.advance(by: .milliseconds(1501))
            try await a.release(lease)
            #expect(try await a.current(key: key)?.holder == "stays")
        }
    }

    /// A waiting elector that resigns (a graceful stop of its process) leaves the queue at once: the next release
    /// passes it over and wakes the candidate behind it, instead of starting a term for it that blocks the key
    /// for its ttl (60 s here).
    @Test func aWaitingElectorThatResignsLeavesTheQueue() async throws {
        try await withTwoStores { a, b throws in
            let key = unique("queue-resign")
            let lease = try #require(try await a.acquire(key: key, holder: "leader", ttl: .seconds(60)).lease)
            let configuration = ElectorConfiguration(ttl: .seconds(60))
            func follows(_ elector: LeaderElector) -> Bool {
                if case .follower(let leader) = elector.role { leader?.holder == "leader" } else { false }
            }
            // In this order: "gone" is the head of the queue.
            let gone = try LeaderElector(store: b, key: key, holder: "gone", configuration: configuration)
            let goneRun = Task { try await gone.run() }
            #expect(try await eventually { follows(gone) }, "gone to wait")
            let stays = try LeaderElector(store: a, key: key, holder: "stays", configuration: configuration)
            let staysRun = Task { try await stays.run() }
            defer { staysRun.cancel() }
            #expect(try await eventually { follows(stays) }, "stays to wait")
            gone.resign()
            try await goneRun.value
            try await a.release(lease)
            #expect(try await eventually { stays.role.isLeader }, "the candidate still waiting to lead at once")
            #expect(try await b.current(key: key)?.holder == "stays")
            #expect(!gone.role.isLeader)
            staysRun.cancel()
            try await staysRun.value
        }
    }

    /// An elector that resigns while its acquire is in flight, and whose acquire then lands with its answer lost (a
    /// timeout after the store acted), gives back the term that acquire started: the key is free at once rather
    /// than blocked for its ttl (60 s here) by a term nobody works in.
    @Test func anElectorResigningWhileItsAcquireLandsUnansweredGivesTheTermBack() async throws {
        try await withDatabase { path throws in
            let faulty = FaultInjectingStore(wrapping: try SQLiteLeaseStore(path: path))
            try await LeaseStore(faulty).withRunning { store in
                let key = unique("queue-lost-answer")
                faulty.setFault(.hang, for: .operation(.acquire))
                let elector = try LeaderElector(
                    store: store, key: key, holder: "resigning", configuration: ElectorConfiguration(ttl: .seconds(60)))
                let run = Task { try await elector.run() }
                await faulty.waitForHangingCalls(atLeast: 1)
                elector.resign()
                // The acquire goes on now: it takes the free key, and its answer is lost.
                faulty.setFault(.loseReply, for: .operation(.acquire))
                try await run.value
                #expect(faulty.callCount(.acquire) == 1)
                #expect(!elector.role.isLeader)
                #expect(try await store.current(key: key) == nil, "the term the lost acquire started was kept")
            }
        }
    }

    /// A waiting candidate handed the key takes the term its store's change feed read, without a write: promised
    /// until the term's expiry as read (on the expiry clock). A read naming a term older than one its store has
    /// seen in an answer since is never taken.
    @Test func aHandedTermIsTakenFromTheFeedsReadButNeverFromAStaleOne() async throws {
        let clock = ManualClock()
        try await withDatabase { path throws in
            let expiry = ManualExpiryClock(manual: clock)
            let driver = try SQLiteLeaseStore(path: path, clock: expiry)
            try await LeaseStore(try SQLiteLeaseStore(path: path, clock: expiry)).withRunning { a in
                try await LeaseStore(driver).withRunning { b in
                    let key = unique("queue-handed")
                    let first = try #require(try await a.acquire(key: key, holder: "a", ttl: Self.long).lease)
                    let waiting = try await b.acquire(key: key, holder: "b", ttl: Self.long, waiting: true)
                    #expect(waiting.lease == nil)
                    let recorder = ChangeRecorder(try b.changes(key: key))
                    defer { recorder.cancel() }
                    #expect(try await recorder.wait { $0.last??.holder == "a" })
                    try await a.release(first)
                    #expect(try await recorder.wait { $0.last??.holder == "b" })
                    clock.advance(by: .seconds(1))
                    let taken = try #require(
                        try await b.acquire(key: key, holder: "b", ttl: Self.long, waiting: true).lease)
                    #expect(taken.ttl == Self.long - .seconds(1), "not taken from the read: \(taken.ttl)")
                    #expect(try await a.current(key: key)?.token == taken.token)

                    // b gives the term back, c takes the key, and b, asking again, is refused by c.
                    try await b.release(taken)
                    let third = try #require(try await a.acquire(key: key, holder: "c", ttl: Self.long).lease)
                    #expect(try await b.acquire(key: key, holder: "b", ttl: Self.long, waiting: true).lease == nil)
                    // A read naming b's old term, as a late one would leave it, is not taken.
                    driver.handedTerms.read(
                        key: key, leader: LeaderInfo(holder: "b", token: taken.token, ttl: Self.long),
                        expiresAt: driver.timer.now() + Self.long)
                    let again = try await b.acquire(key: key, holder: "b", ttl: Self.long, waiting: true)
                    #expect(again.lease == nil, "took the stale term: \(again)")
                    try await b.leaveQueue(key: key, holder: "b")
                    try await a.release(third)
                }
            }
        }
    }

    /// After an expiry, the feed's own read hands the key to the head of the queue and names it.
    @Test func theFeedNamesTheHeadAfterAnExpiry() async throws {
        let clock = ManualClock()
        try await withTwoStores(clock: clock) { a, b throws in
            let key = unique("queue-feed")
            _ = try #require(try await a.acquire(key: key, holder: "leader", ttl: .milliseconds(200)).lease)
            _ = try await b.acquire(key: key, holder: "head", ttl: Self.long, metadata: "m", waiting: true)
            let recorder = ChangeRecorder(try b.changes(key: key))
            defer { recorder.cancel() }
            #expect(try await recorder.wait { $0.first??.holder == "leader" })
            await clock.waitForSleepers(atLeast: 1)
            clock.advance(by: .milliseconds(201))
            #expect(try await recorder.wait { $0.last??.holder == "head" })
            #expect(recorder.observations.contains { $0 == nil } == false)
            #expect(try await a.current(key: key)?.metadata == "m")
        }
    }
}
