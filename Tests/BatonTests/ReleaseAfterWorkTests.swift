import Baton
import BatonTestKit
import Synchronization
import Testing

/// Work that ignores cancellation, as a body in the middle of a write does: it runs until the test lets it end.
final class StubbornWork: Sendable {
    private struct State {
        var started = false
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Runs until ``finish()``, whatever happens to the calling task.
    func run() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                state.started = true
                if !state.finished { state.waiter = continuation }
                return state.finished
            }
            if done { continuation.resume() }
        }
    }

    var started: Bool { state.withLock { $0.started } }

    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}

/// However a term ends, the key is released only after the term's work has returned, and never after its deadline;
/// the work can read its term's deadline as it moves on; a waiting candidate notices a feed that died silently.
@Suite struct ReleaseAfterWorkTests {
    let clock = ManualClock()
    let configuration = ElectorConfiguration(ttl: .seconds(10))  // renew every 3.33 s, margin 1 s

    func makeElector(
        _ store: LeaseStore,
        holder: String,
        configuration: ElectorConfiguration? = nil
    ) throws -> LeaderElector {
        try LeaderElector(
            store: store, key: "job", holder: holder, configuration: configuration ?? self.configuration,
            clock: clock, seed: 7)
    }

    /// An elector "a" running and leading on a memory store behind a fault-injecting wrapper, with stubborn work
    /// started under ``LeaderElector/withLeadership(_:)``.
    struct Leading {
        let memory: MemoryLeaseStore
        let store: FaultInjectingStore
        let elector: LeaderElector
        let log: EventLog
        let run: Task<Void, any Error>
        let work: StubbornWork
        let lead: Task<Void, any Error>
    }

    func leadWithStubbornWork() async throws -> Leading {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.waitForElection()
        let work = StubbornWork()
        let lead = Task { try await elector.withLeadership { _ in await work.run() } }
        #expect(try await eventually { work.started }, "the work started")
        return Leading(memory: memory, store: store, elector: elector, log: log, run: run, work: work, lead: lead)
    }

    /// Real time in which a release made too early would have gone out (the elector's own steps take
    /// microseconds). It only gives a wrong release its chance: the assertions after it cannot pass by luck.
    func windowForAWrongRelease() async {
        try? await Task.sleep(for: .milliseconds(150))
    }

    @Test func resignReleasesOnlyAfterTheWorkReturned() async throws {
        let leading = try await leadWithStubbornWork()
        let (memory, store, elector, log, run, work, lead) = (
            leading.memory, leading.store, leading.elector, leading.log, leading.run, leading.work, leading.lead
        )
        elector.resign()
        await log.waitForDemotion()
        await windowForAWrongRelease()
        #expect(store.callCount(.release) == 0, "released while the work still ran")
        #expect(try await memory.current(key: "job")?.holder == "a")

        work.finish()
        #expect(try await eventually { store.callCount(.release) == 1 }, "the release once the work returned")
        // The call is counted when it starts: its effect follows.
        #expect(try await eventually { try await memory.current(key: "job") == nil }, "the key free")
        try await run.value
        await #expect(throws: BatonError.self) { try await lead.value }
    }

    @Test func cancellingASelfCampaigningWithLeadershipReleasesAfterTheWork() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let work = StubbornWork()
        let lead = Task { try await elector.withLeadership { _ in await work.run() } }
        #expect(try await eventually { work.started }, "the work started")

        lead.cancel()
        await windowForAWrongRelease()
        #expect(store.callCount(.release) == 0, "released while the work still ran")
        #expect(try await memory.current(key: "job")?.holder == "a")

        work.finish()
        #expect(try await eventually { store.callCount(.release) == 1 }, "the release once the work returned")
        // The call is counted when it starts: its effect follows.
        #expect(try await eventually { try await memory.current(key: "job") == nil }, "the key free")
        _ = try? await lead.value
    }

    @Test func workStillRunningAtTheDeadlineIsNotReleased() async throws {
        let leading = try await leadWithStubbornWork()
        let (store, elector, log, run, work, lead) = (
            leading.store, leading.elector, leading.log, leading.run, leading.work, leading.lead
        )
        elector.resign()
        await log.waitForDemotion()
        // The term's deadline (t0 + ttl − margin = 9 s) passes with the work still running: run() ends without a
        // release, and the key is left to its ttl.
        clock.advance(by: .seconds(9))
        try await run.value
        #expect(store.callCount(.release) == 0)
        work.finish()
        _ = try? await lead.value
        #expect(store.callCount(.release) == 0)
    }

    @Test func theWorkReadsItsDeadlineAsRenewsMoveIt() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let elector = try makeElector(LeaseStore(memory), holder: "a")
        let log = EventLog(elector)
        #expect(elector.timeLeft == nil)
        let run = Task { try await elector.run() }
        await log.waitForElection()
        // Elected by an acquire sent at 0: the deadline is 0 + 10 s − 1 s.
        #expect(elector.timeLeft == .seconds(9))
        clock.advance(by: .seconds(2))
        #expect(elector.timeLeft == .seconds(7))
        // The renew goes out at 4 s (due at 3.33 s): the deadline moves to 13 s.
        clock.advance(by: .seconds(2))
        await log.wait("a renew") { events in events.contains { if case .renewed = $0 { true } else { false } } }
        #expect(elector.timeLeft == .seconds(9))
        elector.resign()
        try await run.value
        #expect(elector.timeLeft == nil)
    }

    /// A feed on a connection that died without a reset delivers nothing and reports no error: the waiting
    /// candidate still reads the store once per ttl, so a crashed leader's expiry is noticed.
    @Test func aWaitingCandidateNoticesAnExpiryItsSilentFeedMissed() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        // "b" leads and crashes: its term expires at 10 s, and nobody releases it.
        guard case .acquired = try await memory.acquire(key: "job", holder: "b", ttl: .seconds(10), metadata: nil)
        else {
            Issue.record("b was not elected")
            return
        }
        // Polling (the fallback while a feed is down) is far off: only the check can find the expiry in time.
        let configuration = ElectorConfiguration(ttl: .seconds(10), pollInterval: .seconds(600))
        let elector = try makeElector(LeaseStore(store), holder: "a", configuration: configuration)
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.wait("a sees b lead") { events in
            events.contains { if case .leaderChanged(let info) = $0 { info?.holder == "b" } else { false } }
        }
        #expect(try await eventually { store.deliveredChangeCount >= 1 }, "the feed delivered")
        store.silenceChanges(true)
        // Manual time goes on a second at a time (real time in between lets the elector act on each step).
        for _ in 0..<40 where log.elections.isEmpty {
            clock.advance(by: .seconds(1))
            try? await Task.sleep(for: .milliseconds(20))
        }
        await log.waitForElection()
        #expect(store.callCount(.current) >= 1)
        run.cancel()
        try await run.value
    }
    /// A release that outlives the release timeout still lands later. The same elector campaigning again meanwhile
    /// must not take up the term it was releasing (the store answers an acquire by the holder of a term as a renew of
    /// it): the late release would then free the key under the new work, and a second leader could be elected.
    @Test func aReleaseThatOutlivedItsTimeoutIsAnsweredBeforeTheNextAcquire() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        store.setFault(.hang, for: .operation(.release))
        let first = Task { try await elector.withLeadership { lease in lease.token } }
        #expect(try await eventually { store.callCount(.release) == 1 }, "the first term's release went out")
        // The release's wait times out after 2 s: the first campaign ends, its release still unanswered.
        let timeout = ManualClock.Instant(offset: configuration.releaseTimeout)
        #expect(try await eventually { clock.sleeperDeadlines.contains(timeout) }, "the release's timer set")
        clock.advance(to: timeout)
        #expect(try await first.value == 1)
        #expect(try await memory.current(key: "job")?.token == 1, "the release hangs: the key still held")

        let entered = Mutex<Lease?>(nil)
        let work = StubbornWork()
        let second = Task {
            try await elector.withLeadership { lease in
                entered.withLock { $0 = lease }
                await work.run()
            }
        }
        await windowForAWrongRelease()
        #expect(entered.withLock { $0 } == nil, "a new term began while the last release was still unanswered")
        // The store answers the release now: the key is free, and the waiting acquire takes a new term.
        store.clearFaults()
        #expect(try await eventually { entered.withLock { $0 } != nil }, "elected once the release landed")
        let lease = try #require(entered.withLock { $0 })
        #expect(lease.token == 2, "the second term's token")
        await windowForAWrongRelease()
        #expect(try await memory.current(key: "job")?.token == lease.token, "the key held by the term at work")
        work.finish()
        try await second.value
    }
}
