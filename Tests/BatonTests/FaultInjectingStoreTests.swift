import Baton
import BatonTestKit
import Testing

@Suite("FaultInjectingStore")
struct FaultInjectingStoreTests {
    typealias Operation = FaultInjectingStore.Operation

    let clock = ManualClock()
    let memory: MemoryLeaseStore
    let store: FaultInjectingStore

    init() {
        memory = MemoryLeaseStore(clock: clock)
        store = FaultInjectingStore(wrapping: memory, clock: clock)
    }

    @Test func forwardsEverythingWithoutFaults() async throws {
        let lease = try #require(try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: "m").lease)
        #expect(try await memory.current(key: "k")?.holder == "a")
        #expect(try await store.current(key: "k")?.metadata == "m")
        #expect(try await store.renew(lease, ttl: .seconds(5)).token == lease.token)
        #expect(try await store.claim(system: "s", round: "r", candidate: "a", retention: .seconds(60)) == .won)
        try await store.complete(system: "s", round: "r", by: .candidate("a"), retention: .seconds(60))
        #expect(try await store.winner(system: "s", round: "r") == "a")
        #expect(try await store.completion(system: "s", round: "r") == "a")
        try await store.heartbeat(group: "g", member: "x", ttl: .seconds(5))
        #expect(try await store.members(group: "g") == ["x"])
        try await store.leave(group: "g", member: "x")
        try await store.release(lease)
        #expect(try await memory.current(key: "k") == nil)
        #expect(store.totalCallCount == 11)
        #expect(store.callCount(.acquire) == 1)
        #expect(store.callCount(.current) == 1)
        #expect(store.callCount(.changes) == 0)
    }

    @Test func failingOneOperationLeavesTheOthersWorking() async throws {
        let acquired = try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: "old")
        let lease = try #require(acquired.lease)
        store.setFault(.fail, for: .operation(.renew))
        #expect(store.fault(for: .operation(.renew)) == .fail)
        var update = lease
        update.metadata = "new"
        await expectCode(.storeUnavailable) { try await store.renew(update, ttl: .seconds(5)) }
        #expect(try await memory.current(key: "k")?.metadata == "old", "a failed call must not reach the store")
        #expect(try await store.current(key: "k")?.holder == "a")
        store.setFault(nil, for: .operation(.renew))
        #expect(try await store.renew(update, ttl: .seconds(5)).metadata == "new")
        #expect(store.callCount(.renew) == 2)
    }

    @Test func failingAFamily() async throws {
        store.setFault(.fail, for: .family(.rounds))
        await expectCode(.storeUnavailable) {
            try await store.claim(system: "s", round: "r", candidate: "a", retention: .seconds(60))
        }
        await expectCode(.storeUnavailable) { try await store.winner(system: "s", round: "r") }
        await expectCode(.storeUnavailable) {
            try await store.complete(system: "s", round: "r", by: .anonymous("x"), retention: .seconds(60))
        }
        await expectCode(.storeUnavailable) { try await store.completion(system: "s", round: "r") }
        #expect(try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil).lease != nil)
        try await store.heartbeat(group: "g", member: "m", ttl: .seconds(5))
        #expect(try await memory.winner(system: "s", round: "r") == nil)
        #expect(Operation.claim.family == .rounds && Operation.members.family == .presence)
        #expect(FaultInjectingStore.Scope.family(.leases).covers(.changes))
        #expect(!FaultInjectingStore.Scope.family(.leases).covers(.run))
    }

    @Test func aLostReplyIsAppliedButReportedAsFailure() async throws {
        store.setFault(.loseReply, for: .operation(.acquire))
        await expectCode(.storeUnavailable) {
            try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil)
        }
        #expect(try await memory.current(key: "k")?.holder == "a")
        store.clearFaults()
        #expect(try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil).lease != nil)
    }

    @Test func latencyIsSleptOnTheInjectedClock() async throws {
        store.setFault(.latency(.seconds(2)), for: .all)
        store.setFault(.latency(.seconds(3)), for: .operation(.acquire))
        let call = Task { try await store.acquire(key: "k", holder: "a", ttl: .seconds(10), metadata: nil) }
        await clock.waitForSleepers(atLeast: 1)
        #expect(clock.nextDeadline == ManualClock.Instant(offset: .seconds(5)), "latencies of matching scopes add up")
        #expect(try await memory.current(key: "k") == nil, "the call must not reach the store before its latency")
        clock.advance(by: .seconds(5))
        let lease = try #require(try await call.value.lease)
        #expect(lease.holder == "a")
        #expect(try await memory.current(key: "k")?.remaining == .seconds(10))
    }

    @Test func hangUntilTheFaultIsCleared() async throws {
        _ = try await memory.acquire(key: "k", holder: "a", ttl: .seconds(10), metadata: nil)
        store.setFault(.hang, for: .operation(.current))
        let call = Task { try await store.current(key: "k") }
        await store.waitForHangingCalls(atLeast: 1)
        #expect(store.hangingCallCount == 1)
        store.setFault(.fail, for: .operation(.heartbeat))
        await store.waitForHangingCalls(atLeast: 1)
        #expect(store.hangingCallCount == 1, "an unrelated fault change must not release the hang")
        store.setFault(nil, for: .operation(.current))
        #expect(try await call.value?.holder == "a")
        #expect(store.hangingCallCount == 0)
    }

    @Test func aHangingCallCanBeCancelled() async throws {
        store.setFault(.hang)
        let call = Task { try await store.members(group: "g") }
        await store.waitForHangingCalls(atLeast: 1)
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(store.hangingCallCount == 0)
    }

    @Test func failingPartitionFailsEveryOperation() async throws {
        let lease = Lease(key: "k", holder: "a", token: 1, ttl: .seconds(5))
        store.partition()
        #expect(store.partitionMode == .failing)
        await expectCode(.storeUnavailable) {
            try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil)
        }
        await expectCode(.storeUnavailable) { try await store.renew(lease, ttl: .seconds(5)) }
        await expectCode(.storeUnavailable) { try await store.release(lease) }
        await expectCode(.storeUnavailable) { try await store.leaveQueue(key: "k", holder: "a") }
        await expectCode(.storeUnavailable) { try await store.current(key: "k") }
        await expectCode(.storeUnavailable) {
            try await store.claim(system: "s", round: "r", candidate: "a", retention: RoundElection.defaultRetention)
        }
        await expectCode(.storeUnavailable) { try await store.winner(system: "s", round: "r") }
        await expectCode(.storeUnavailable) {
            try await store.complete(
                system: "s", round: "r", by: .anonymous("x"), retention: RoundElection.defaultRetention)
        }
        await expectCode(.storeUnavailable) { try await store.completion(system: "s", round: "r") }
        await expectCode(.storeUnavailable) { try await store.heartbeat(group: "g", member: "m", ttl: .seconds(5)) }
        await expectCode(.storeUnavailable) { try await store.leave(group: "g", member: "m") }
        await expectCode(.storeUnavailable) { try await store.members(group: "g") }
        await expectCode(.storeUnavailable) { try await store.leases(prefix: "", limit: 10) }
        await expectCode(.storeUnavailable) { try await store.rounds(system: "s", limit: 10) }
        await expectCode(.storeUnavailable) {
            for try await _ in try store.changes(key: "k") {}
        }
        await expectCode(.storeUnavailable) { try await store.run() }
        for operation in Operation.allCases {
            #expect(store.callCount(operation) == 1, "\(operation) was not counted once")
        }
        store.heal()
        #expect(store.partitionMode == nil)
        #expect(try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil).lease != nil)
    }

    @Test func partitionEndsOpenChangeStreams() async throws {
        _ = try await memory.acquire(key: "k", holder: "a", ttl: .seconds(10), metadata: nil)
        var changes = try store.changes(key: "k").makeAsyncIterator()
        let first = try await changes.next()
        #expect(first??.holder == "a")
        #expect(store.openChangeStreamCount == 1)
        store.partition(.hanging)
        await expectCode(.storeUnavailable) { _ = try await changes.next() }
        #expect(store.openChangeStreamCount == 0)
    }

    @Test func failFaultOnChangesEndsOpenStreams() async throws {
        var changes = try store.changes(key: "k").makeAsyncIterator()
        let first = try await changes.next()
        #expect(first == .some(nil))
        store.setFault(.fail, for: .family(.leases))
        await expectCode(.storeUnavailable) { _ = try await changes.next() }
    }

    @Test func changesSubscriptionWaitsForLatency() async throws {
        _ = try await memory.acquire(key: "k", holder: "a", ttl: .seconds(100), metadata: nil)
        store.setFault(.latency(.seconds(1)), for: .operation(.changes))
        let first = Task {
            var changes = try store.changes(key: "k").makeAsyncIterator()
            return try await changes.next()
        }
        await clock.waitForSleepers(atLeast: 1)
        #expect(clock.nextDeadline == ManualClock.Instant(offset: .seconds(1)))
        clock.advance(by: .seconds(1))
        #expect(try await first.value??.holder == "a")
    }

    @Test func hangingPartitionHoldsCallsUntilHealed() async throws {
        store.partition(.hanging)
        let call = Task { try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil) }
        await store.waitForHangingCalls(atLeast: 1)
        #expect(try await memory.current(key: "k") == nil)
        store.heal()
        #expect(try await call.value.lease?.holder == "a")
    }

    @Test func partitionDuringLatencyFailsTheCallInFlight() async throws {
        store.setFault(.latency(.seconds(1)), for: .operation(.acquire))
        let call = Task { try await store.acquire(key: "k", holder: "a", ttl: .seconds(5), metadata: nil) }
        await clock.waitForSleepers(atLeast: 1)
        store.partition()
        clock.advance(by: .seconds(1))
        await expectCode(.storeUnavailable) { try await call.value }
        #expect(try await memory.current(key: "k") == nil)
    }

    @Test func theFrontValidatesBeforeTheFaultedDriverIsCalled() async throws {
        store.partition()
        let front = LeaseStore(store)
        await expectCode(.invalidArgument) { try await front.acquire(key: "", holder: "a", ttl: .seconds(5)) }
        await expectCode(.invalidArgument) { try await front.heartbeat(group: "g", member: "m", ttl: .zero) }
        #expect(throws: BatonError.self) { try front.changes(key: "bad\nkey") }
        #expect(store.totalCallCount == 0)
    }

    @Test func runCanBeFaultedAndThenRunsTheStore() async throws {
        store.setFault(.fail, for: .family(.lifecycle))
        await expectCode(.storeUnavailable) { try await store.run() }
        #expect(try await memory.current(key: "k") == nil, "the memory store must still be open")
        store.clearFaults()
        let running = Task { try await store.run() }
        running.cancel()
        try await running.value
        await expectCode(.storeUnavailable) { try await memory.current(key: "k") }
    }

    @Test func clearFaultsRemovesEverything() async throws {
        store.setFault(.fail)
        store.partition()
        store.setPlan(FaultPlan(seed: 1, failureProbability: 1))
        store.clearFaults()
        #expect(store.fault(for: .all) == nil && store.partitionMode == nil && store.plan == nil)
        #expect(try await store.members(group: "g") == [])
    }

    // MARK: Random plans

    @Test func aSeededPlanIsRepeatable() async throws {
        func outcomes(seed: UInt64) async -> [Bool] {
            let store = FaultInjectingStore(wrapping: MemoryLeaseStore(clock: ManualClock()), clock: ManualClock())
            store.setPlan(FaultPlan(seed: seed, failureProbability: 0.3))
            var outcomes: [Bool] = []
            for _ in 0..<300 {
                do {
                    _ = try await store.current(key: "k")
                    outcomes.append(true)
                } catch {
                    outcomes.append(false)
                }
            }
            return outcomes
        }
        let first = await outcomes(seed: 42)
        let again = await outcomes(seed: 42)
        let other = await outcomes(seed: 43)
        #expect(first == again)
        #expect(first != other)
        let failures = first.filter { !$0 }.count
        #expect((45...135).contains(failures), "300 calls at p = 0.3 failed \(failures) times")
    }

    @Test func planScopeAndLostReplies() async throws {
        store.setPlan(FaultPlan(seed: 7, lostReplyProbability: 1, scope: .operation(.heartbeat)))
        await expectCode(.storeUnavailable) { try await store.heartbeat(group: "g", member: "m", ttl: .seconds(5)) }
        #expect(try await store.members(group: "g") == ["m"], "a lost reply is applied; members is out of scope")
    }

    @Test func planLatencyIsDrawnFromTheRange() async throws {
        store.setPlan(FaultPlan(seed: 3, latencyProbability: 1, latency: .seconds(2) ... .seconds(4)))
        let call = Task { try await store.members(group: "g") }
        await clock.waitForSleepers(atLeast: 1)
        let deadline = try #require(clock.nextDeadline)
        #expect(deadline.offset >= .seconds(2) && deadline.offset <= .seconds(4))
        clock.advance(to: deadline)
        #expect(try await call.value == [])
    }

    @Test func seededRandomIsSplitMix64() {
        var zero = SeededRandom(seed: 0)
        #expect(zero.next() == 0xE220_A839_7B1D_CDAF)
        #expect(zero.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(zero.next() == 0x06C4_5D18_8009_454F)
        var reference = SeededRandom(seed: 1_234_567)
        #expect(reference.next() == 6_457_827_717_110_365_317)
        #expect(reference.next() == 3_203_168_211_198_807_973)
        var copy = reference
        #expect(copy.next() == reference.next())
        #expect(Int.random(in: 0..<1000, using: &copy) == Int.random(in: 0..<1000, using: &reference))
    }
}

/// Expects `body` to throw a ``BatonError`` with `code`.
func expectCode<T>(
    _ code: BatonError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async {
    do {
        let value = try await body()
        Issue.record("expected BatonError \(code), got \(value)", sourceLocation: sourceLocation)
    } catch let error as BatonError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected BatonError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}
