import BatonTestKit
import Synchronization
import Testing

@testable import Baton

/// Semaphores on the memory store: never more holders than permits, a slot's tokens rising, the number of permits
/// fixed while the semaphore is in use, a semaphore of 1 being the election of its key, and waits that end.
@Suite struct SemaphoreElectorTests {
    let configuration = ElectorConfiguration(ttl: .seconds(5))

    func memoryStore() -> LeaseStore { LeaseStore(MemoryLeaseStore()) }

    @Test("8 candidates of a semaphore of 3: never more than 3 at work, never two in a slot, tokens rise per slot")
    func neverMoreThanPermits() async throws {
        let most = try await SemaphoreScenario.run(
            stores: [memoryStore()], permits: 3, candidates: 8, rounds: 4, work: .milliseconds(100))
        // With 8 candidates asking at once, the slots are all used.
        #expect(most == 3)
    }

    @Test("a semaphore of 1 is the election of its key: it waits for a LeaderElector's term and excludes it")
    func semaphoreOfOneIsTheElection() async throws {
        let store = memoryStore()
        let semaphore = try SemaphoreElector(
            store: store, key: "job", holder: "s", permits: 1, configuration: configuration)
        #expect(semaphore.slotKeys == ["job"])
        let elector = try LeaderElector(store: store, key: "job", holder: "e", configuration: configuration)
        let elected = AsyncStream<FencingToken>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        let leading = Task {
            try await elector.withLeadership { lease in
                elected.continuation.yield(lease.token)
                for await _ in release.stream { break }
            }
        }
        var tokens = elected.stream.makeAsyncIterator()
        let led = try #require(await tokens.next())
        let permit = Task { try await semaphore.withPermit { permit in (permit.slot, permit.token) } }
        // It waits in the key's own queue behind the elector.
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await store.current(key: "job")?.holder == "e")
        release.continuation.finish()
        try await leading.value
        let (slot, token) = try await permit.value
        #expect(slot == 0)
        #expect(token > led)
    }

    @Test("slot keys, names too long and numbers of permits out of range")
    func validation() throws {
        let store = memoryStore()
        let three = try SemaphoreElector(store: store, key: "k", holder: "h", permits: 3)
        #expect(three.slotKeys == ["k#0", "k#1", "k#2"])
        #expect(three.permitsGroup == "k#permits")
        for permits in [0, -1, SemaphoreElector.maxPermits + 1] {
            #expect {
                _ = try SemaphoreElector(store: store, key: "k", holder: "h", permits: permits)
            } throws: { error in
                (error as? BatonError)?.code == .invalidArgument
                    && (error as? BatonError)?.message.contains("permits is \(permits)") == true
            }
        }
        let long = String(repeating: "k", count: 250)
        #expect {
            _ = try SemaphoreElector(store: store, key: long, holder: "h", permits: 3)
        } throws: { error in
            (error as? BatonError)?.message.contains("too long for a semaphore") == true
        }
    }

    @Test("another number of permits is refused while the semaphore is in use, and accepted once it is not")
    func permitsArePartOfTheSemaphore() async throws {
        let store = memoryStore()
        let two = try SemaphoreElector(store: store, key: "pool", holder: "a", permits: 2, configuration: configuration)
        let three = try SemaphoreElector(
            store: store, key: "pool", holder: "b", permits: 3, configuration: configuration)
        _ = try await two.withPermit { _ in
            await #expect {
                try await three.withPermit { _ in }
            } throws: { error in
                let error = error as? BatonError
                return error?.code == .invalidArgument
                    && error?.message.contains("semaphore pool is in use with 2 permits (by a)") == true
            }
        }
        // The first candidate left: the key is free for another number.
        let slot = try await three.withPermit { $0.slot }
        #expect((0..<3).contains(slot))
    }

    @Test("a semaphore of more than 1 is refused while its key is held as a lease")
    func leaseAndSemaphoreExcludeEachOther() async throws {
        let store = memoryStore()
        let lease = try await store.acquire(key: "mixed", holder: "leader", ttl: .seconds(30), metadata: nil)
        guard case .acquired(let held) = lease else {
            Issue.record("the lease was not acquired")
            return
        }
        let semaphore = try SemaphoreElector(
            store: store, key: "mixed", holder: "s", permits: 2, configuration: configuration)
        await #expect {
            try await semaphore.withPermit { _ in }
        } throws: { error in
            (error as? BatonError)?.message.contains("mixed is held as a lease by leader") == true
        }
        #expect(try await store.members(group: semaphore.permitsGroup).isEmpty, "the refused candidate stayed")
        try await store.release(held)
    }

    @Test("a candidate cancelled while it waits leaves every slot; a body that throws frees its slot")
    func cancellationAndThrowingWork() async throws {
        let store = memoryStore()
        let holders = try (0..<2).map { index in
            try SemaphoreElector(
                store: store, key: "busy", holder: "h\(index)", permits: 2, configuration: configuration)
        }
        let release = AsyncStream<Void>.makeStream()
        let working = AsyncStream<Void>.makeStream()
        let holding = holders.map { holder in
            Task {
                try await holder.withPermit { _ in
                    working.continuation.yield()
                    for await _ in release.stream { break }
                }
            }
        }
        var iterator = working.stream.makeAsyncIterator()
        await iterator.next()
        await iterator.next()
        let waiter = try SemaphoreElector(
            store: store, key: "busy", holder: "waiter", permits: 2, configuration: configuration)
        let waiting = Task { try await waiter.withPermit { _ in Issue.record("the cancelled waiter got a permit") } }
        try await Task.sleep(for: .milliseconds(200))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        // Both holders end; the slots are free, not handed to the candidate that left.
        release.continuation.finish()
        for task in holding { try await task.value }
        for slotKey in waiter.slotKeys { #expect(try await store.current(key: slotKey) == nil) }

        struct Failure: Error {}
        await #expect(throws: Failure.self) { try await holders[0].withPermit { _ in throw Failure() } }
        let tokens = try await holders[1].withPermit { permit in permit.token }
        #expect(tokens > 0)
        for slotKey in waiter.slotKeys { #expect(try await store.current(key: slotKey) == nil) }
    }

    @Test("one withPermit at a time per instance")
    func oneAtATime() async throws {
        let semaphore = try SemaphoreElector(
            store: memoryStore(), key: "solo", holder: "h", permits: 2, configuration: configuration)
        _ = try await semaphore.withPermit { _ in
            await #expect {
                try await semaphore.withPermit { _ in }
            } throws: { error in
                (error as? BatonError)?.message.contains("already running") == true
            }
        }
    }

    @Test("the permit's time left is live while held and nil after")
    func timeLeft() async throws {
        let semaphore = try SemaphoreElector(
            store: memoryStore(), key: "timed", holder: "h", permits: 2, configuration: configuration)
        let permit = try await semaphore.withPermit { permit in
            #expect(permit.timeLeft.map { $0 > .seconds(3) } == true)
            #expect(permit.lease.key == semaphore.slotKeys[permit.slot])
            return permit
        }
        #expect(permit.timeLeft == nil)
    }
}

/// A resignation that reaches a campaign claimed but not yet running is kept for it, not lost.
@Suite struct CampaignStartTests {
    @Test("resign() between claiming a campaign and running it ends the campaign as soon as it runs")
    func resignBeforeTheCampaignRuns() async throws {
        let store = LeaseStore(MemoryLeaseStore())
        let elector = try LeaderElector(store: store, key: "early", holder: "a")
        let campaign = try #require(elector.claimCampaign())
        elector.resign()
        let run = Task { await elector.run(campaign) }
        let ended = Task {
            try await Task.sleep(for: .seconds(10))
            run.cancel()
        }
        await run.value
        #expect(!ended.isCancelled && !run.isCancelled, "the campaign ran on until cancelled: the resignation was lost")
        ended.cancel()
        #expect(try await store.current(key: "early") == nil)
    }
}
