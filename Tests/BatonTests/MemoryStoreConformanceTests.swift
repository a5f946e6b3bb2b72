import Baton
import BatonTestKit
import ServiceLifecycle
import Testing

/// The memory store on its own manual clock: ``elapse(_:)`` advances the clock, so expiry costs no real time.
///
/// Each check gets a harness of its own, so one check's elapse never expires another's terms. Changes the
/// store pushes after an advance (its feed wakes on the clock, then reads) arrive asynchronously; the suite's
/// bounded real-time waits absorb that.
struct MemoryStoreHarness: StoreHarness {
    let clock = ManualClock()
    let store: LeaseStore
    var changeTimeout: Duration = .seconds(10)

    init(wrap: (MemoryLeaseStore, ManualClock) -> any LeaseStoreDriver = { store, _ in store }) {
        store = LeaseStore(wrap(MemoryLeaseStore(clock: clock), clock))
    }

    func makeStore() async throws -> LeaseStore { store }

    /// Another front over the same in-process store: the memory store has one instance per process.
    func makeOtherInstance() async throws -> LeaseStore { LeaseStore(store.driver, clock: clock) }

    func elapse(_ duration: Duration) async throws {
        clock.advance(by: duration)
    }

    var ttl: Duration { .seconds(1) }
}

@Suite("Memory store conformance")
struct MemoryStoreConformanceTests {
    @Test("memory store passes", arguments: LeaseStoreConformance.checks)
    func memoryStore(_ check: ConformanceCheck) async throws {
        try await check.run(MemoryStoreHarness())
    }

    @Test("fault-injecting wrapper without faults passes", arguments: LeaseStoreConformance.checks)
    func faultInjectingStoreWithoutFaults(_ check: ConformanceCheck) async throws {
        try await check.run(MemoryStoreHarness { store, clock in FaultInjectingStore(wrapping: store, clock: clock) })
    }

    @Test func checksHaveUniqueNamesAndCoverTheContract() {
        let names = LeaseStoreConformance.checks.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.count >= 20)
        for family in [
            "acquire:", "fencing:", "renew:", "release:", "expiry:", "metadata:", "current:", "changes:",
            "claim:", "complete:", "presence:", "validation:",
        ] {
            #expect(names.contains { $0.hasPrefix(family) }, "no check for \(family)")
        }
        for check in LeaseStoreConformance.checks {
            #expect(LeaseStoreConformance.check(named: check.name)?.name == check.name)
            #expect(check.description == check.name)
        }
        #expect(LeaseStoreConformance.check(named: "no such check") == nil)
    }

    @Test(.timeLimit(.minutes(1)))
    func stoppingTheMemoryStoreEndsOpenChangeStreams() async throws {
        let store = LeaseStore.memory(clock: ManualClock())
        var changes = try store.changes(key: "k").makeAsyncIterator()
        #expect(try await changes.next() == .some(nil))
        let running = Task { try await store.run() }
        running.cancel()
        try await running.value
        await expectCode(.storeUnavailable) { _ = try await changes.next() }
        await expectCode(.storeUnavailable) { try await store.current(key: "k") }
    }

    // MARK: The suite catches broken stores

    @Test func suiteRejectsAStoreWhoseReleaseDoesNothing() async throws {
        let harness = MemoryStoreHarness { store, _ in BrokenStore(base: store, flaw: .releaseIgnored) }
        let failure = await runExpectingFailure(
            "release: the key is free at once; current is nil and another holder acquires",
            harness
        )
        #expect(failure?.message.contains("after release") == true)
    }

    @Test func suiteRejectsAStoreWhoseChangesNeverArrive() async throws {
        var harness = MemoryStoreHarness { store, _ in BrokenStore(base: store, flaw: .silentChanges) }
        harness.changeTimeout = .milliseconds(200)
        let started = ContinuousClock.now
        let failure = await runExpectingFailure(
            "changes: the first observation is the current leader, or nil for a free key",
            harness
        )
        #expect(failure?.message.contains("no observation from changes") == true)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func suiteRejectsAStoreWhereEveryClaimWins() async throws {
        let harness = MemoryStoreHarness { store, _ in BrokenStore(base: store, flaw: .everyClaimWins) }
        let failure = await runExpectingFailure(
            "claim: exactly one of 20 concurrent claimants wins and every loser names it",
            harness
        )
        #expect(failure?.message.contains("expected one of 20") == true)
    }

    @Test func unexpectedErrorsBecomeConformanceFailures() async throws {
        let check = ConformanceCheck("throws a store error") { _ in
            throw BatonError.storeUnavailable("down")
        }
        let failure = await #expect(throws: ConformanceFailure.self) {
            try await check.run(MemoryStoreHarness())
        }
        #expect(failure?.check == "throws a store error")
        #expect(failure?.message.contains("storeUnavailable") == true)
        #expect(failure?.description.hasPrefix("[throws a store error]") == true)
    }

    /// Runs the named check, which must fail with a ``ConformanceFailure`` naming it.
    private func runExpectingFailure(
        _ name: String,
        _ harness: MemoryStoreHarness,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> ConformanceFailure? {
        guard let check = LeaseStoreConformance.check(named: name) else {
            Issue.record("no check named \(name)", sourceLocation: sourceLocation)
            return nil
        }
        let failure = await #expect(throws: ConformanceFailure.self, sourceLocation: sourceLocation) {
            try await check.run(harness)
        }
        #expect(failure?.check == name, sourceLocation: sourceLocation)
        return failure
    }
}

/// A store with one deliberate contract violation, to show that the suite notices it.
private struct BrokenStore: LeaseStoreDriver {
    enum Flaw {
        case releaseIgnored
        case silentChanges
        case everyClaimWins
    }

    let base: any LeaseStoreDriver
    let flaw: Flaw
    var storeName: String { "broken" }
    var needsRun: Bool { false }

    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata)
    }

    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try await base.renew(lease, ttl: ttl)
    }

    func release(_ lease: Lease) async throws {
        if flaw != .releaseIgnored { try await base.release(lease) }
    }

    func current(key: String) async throws -> LeaderInfo? {
        try await base.current(key: key)
    }

    func changes(key: String) throws -> LeaderChanges {
        let changes = try base.changes(key: key)
        return flaw == .silentChanges ? LeaderChanges { _ in } : changes
    }

    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult {
        let result = try await base.claim(system: system, round: round, candidate: candidate, retention: retention)
        return flaw == .everyClaimWins ? .won : result
    }

    func winner(system: String, round: String) async throws -> String? {
        try await base.winner(system: system, round: round)
    }

    func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await base.complete(system: system, round: round, by: completer, retention: retention)
    }

    func completion(system: String, round: String) async throws -> String? {
        try await base.completion(system: system, round: round)
    }

    func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try await base.heartbeat(group: group, member: member, ttl: ttl)
    }

    func leave(group: String, member: String) async throws {
        try await base.leave(group: group, member: member)
    }

    func members(group: String) async throws -> [String] {
        try await base.members(group: group)
    }

    func run() async throws {
        try await base.run()
    }
}
