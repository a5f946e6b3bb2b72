import Baton
import BatonTestKit
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Records an elector's events as they happen, and waits (bounded in real time) for one to arrive.
final class EventLog: Sendable {
    private let task: Task<Void, Never>

    init(_ elector: LeaderElector) {
        let stream = elector.events
        let box = Box()
        task = Task {
            for await event in stream { box.append(event) }
        }
        self.boxed = box
    }

    private final class Box: Sendable {
        let events = Mutex<[ElectorEvent]>([])
        func append(_ event: ElectorEvent) { events.withLock { $0.append(event) } }
    }

    private let boxed: Box

    deinit { task.cancel() }

    var all: [ElectorEvent] { boxed.events.withLock { $0 } }

    var elections: [Lease] {
        all.compactMap { if case .elected(let lease) = $0 { lease } else { nil } }
    }

    var renewals: Int {
        all.count { if case .renewed = $0 { true } else { false } }
    }

    var demotions: [DemotionReason] {
        all.compactMap { if case .demoted(_, let reason) = $0 { reason } else { nil } }
    }

    /// Waits until `condition` holds for the events so far; fails the test after `seconds` of real time.
    func wait(
        _ what: String,
        seconds: Double = 10,
        sourceLocation: SourceLocation = #_sourceLocation,
        until condition: ([ElectorEvent]) -> Bool
    ) async {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(seconds * 1000))
        while clock.now < deadline {
            if condition(all) { return }
            try? await Task.sleep(for: .milliseconds(2))
        }
        Issue.record("timed out waiting for \(what); events: \(all)", sourceLocation: sourceLocation)
    }

    func waitForElection(count: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) async {
        await wait("election \(count)", sourceLocation: sourceLocation) { events in
            events.filter { if case .elected = $0 { true } else { false } }.count >= count
        }
    }

    func waitForDemotion(sourceLocation: SourceLocation = #_sourceLocation) async {
        await wait("demotion", sourceLocation: sourceLocation) { events in
            events.contains { if case .demoted = $0 { true } else { false } }
        }
    }
}

@Suite struct LeaderElectorTests {
    let clock = ManualClock()
    let configuration = ElectorConfiguration(ttl: .seconds(10))  // renew every 3.33 s, margin 1 s

    func makeElector(_ store: LeaseStore, holder: String, key: String = "job") throws -> LeaderElector {
        try LeaderElector(store: store, key: key, holder: holder, configuration: configuration, clock: clock, seed: 7)
    }

    @Test func electedThenRenewsOnSchedule() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.waitForElection()
        #expect(elector.role.lease?.holder == "a")
        #expect(store.callCount(.renew) == 0)
        clock.advance(by: .seconds(4))
        #expect(try await eventually { store.callCount(.renew) >= 1 }, "a renew")
        #expect(elector.role.isLeader)
        run.cancel()
        try await run.value
    }

    /// The safety rule: with the store unreachable and a renew hanging, the leader demotes itself at
    /// t0 + ttl − margin, while the store still holds its term, so nobody else can lead yet.
    @Test func storeDownDemotesAtTheDeadlineBeforeTheTermCanPass() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let workCancelled = Mutex(false)
        let work = Task {
            try await elector.withLeadership { _ in
                await withTaskCancellationHandler {
                    while !Task.isCancelled { try? await ContinuousClock().sleep(for: .milliseconds(1)) }
                } onCancel: {
                    workCancelled.withLock { $0 = true }
                }
            }
        }
        await log.waitForElection()  // acquire sent at t = 0
        store.partition(.hanging)
        clock.advance(to: ManualClock.Instant(offset: .seconds(4)))
        await store.waitForHangingCalls(atLeast: 1)  // the renew sent at 3.33 s hangs
        clock.advance(to: ManualClock.Instant(offset: .seconds(9) - .nanoseconds(1)))
        #expect(log.demotions.isEmpty)
        #expect(elector.role.isLeader)
        clock.advance(to: ManualClock.Instant(offset: .seconds(9)))
        await log.waitForDemotion()
        #expect(log.demotions == [.deadlineReached])
        #expect(try await eventually { workCancelled.withLock { $0 } }, "the work to be cancelled")
        // The store still holds a's term for one more second: nobody else can have started.
        let leader = try await memory.current(key: "job")
        #expect(leader?.holder == "a")
        #expect((leader?.remaining ?? .zero) >= .seconds(1))
        let other = try await memory.acquire(key: "job", holder: "b", ttl: .seconds(10), metadata: nil)
        #expect(other.lease == nil)
        await #expect(throws: BatonError.self) { try await work.value }
        do {
            _ = try await work.value
        } catch let error as BatonError {
            #expect(error.code == .lost)
        }
    }

    @Test func slowRenewsKeepLeadership() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.waitForElection()
        store.setFault(.latency(.seconds(2)), for: .operation(.renew))
        // The clock moves in steps of 500 ms, and each step waits for what it makes happen before the next: a renew
        // that falls due reaches the store and its 2 s delay, and a delayed renew that ends is answered.
        let renewInterval = configuration.effectiveRenewInterval
        var nextRenew = renewInterval
        var answerAt: Duration?
        var renews = 0
        for step in 1...60 {
            let now = Duration.milliseconds(500 * step)
            clock.advance(to: ManualClock.Instant(offset: now))
            if let due = answerAt, now >= due {
                let answered = renews
                #expect(try await eventually { log.renewals >= answered }, "renew \(answered) answered")
                answerAt = nil
            }
            if answerAt == nil, now >= nextRenew {
                renews += 1
                let sent = renews
                #expect(try await eventually { store.callCount(.renew) >= sent }, "renew \(sent) sent")
                let end = ManualClock.Instant(offset: now + .seconds(2))
                #expect(try await eventually { clock.sleeperDeadlines.contains(end) }, "renew \(sent) delayed")
                answerAt = now + .seconds(2)
                nextRenew = now + renewInterval
            }
        }
        #expect(store.callCount(.renew) >= 5)
        #expect(log.demotions.isEmpty)
        #expect(elector.role.isLeader)
        run.cancel()
        try await run.value
    }

    @Test func resignHandsOverWithoutWaitingForExpiry() async throws {
        let store = MemoryLeaseStore(clock: clock)
        let a = try makeElector(LeaseStore(store), holder: "a")
        let b = try makeElector(LeaseStore(store), holder: "b")
        let logA = EventLog(a)
        let logB = EventLog(b)
        let runA = Task { try await a.run() }
        await logA.waitForElection()
        let runB = Task { try await b.run() }
        await logB.wait("b to follow a") { events in
            events.contains { if case .leaderChanged(let info) = $0 { info?.holder == "a" } else { false } }
        }
        #expect(b.role == .follower(of: try await store.current(key: "job")) || !b.role.isLeader)
        a.resign()
        try await runA.value
        // No clock advance: b is woken by the change feed, not by a poll or an expiry.
        await logB.waitForElection()
        #expect(logA.demotions == [.resigned])
        let tokenA = try #require(logA.elections.first?.token)
        let tokenB = try #require(logB.elections.first?.token)
        #expect(tokenB > tokenA)
        runB.cancel()
        try await runB.value
    }

    /// A waiting candidate costs the store nothing at steady state: the change feed wakes it.
    @Test func aWaitingCandidateDoesNotPollTheStore() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        _ = try await memory.acquire(key: "job", holder: "leader", ttl: .seconds(3600), metadata: nil)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "b")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.wait("b to follow the leader") { events in
            events.contains { if case .leaderChanged(let info) = $0 { info?.holder == "leader" } else { false } }
        }
        #expect(try await eventually { store.callCount(.acquire) == 1 }, "the acquire to be answered")
        for _ in 0..<120 {
            clock.advance(by: .seconds(1))
            await Task.yield()
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(store.callCount(.acquire) == 1, "no polling while the change feed works")
        #expect(store.callCount(.renew) == 0)
        run.cancel()
        try await run.value
    }

    @Test func cancellationReleasesTheLease() async throws {
        let store = MemoryLeaseStore(clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.waitForElection()
        #expect(try await store.current(key: "job")?.holder == "a")
        run.cancel()
        try await run.value
        #expect(try await store.current(key: "job") == nil)
        #expect(elector.role == .detached)
    }

    @Test func gracefulShutdownResigns() async throws {
        let store = MemoryLeaseStore(clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let group = ServiceGroup(services: [elector], logger: .init(label: "test"))
        let run = Task { try await group.run() }
        await log.waitForElection()
        await group.triggerGracefulShutdown()
        try await run.value
        #expect(log.demotions == [.resigned])
        #expect(try await store.current(key: "job") == nil)
    }

    @Test func withLeadershipCampaignsRunsAndResignsOnItsOwn() async throws {
        let store = MemoryLeaseStore(clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let token = try await elector.withLeadership { lease in lease.token }
        #expect(token >= 1)
        #expect(try await store.current(key: "job") == nil, "resigned when the work returned")
    }

    @Test func withLeadershipUnderRunKeepsLeading() async throws {
        let store = MemoryLeaseStore(clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "a")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.waitForElection()
        let holder = try await elector.withLeadership { lease in lease.holder }
        #expect(holder == "a")
        #expect(try await store.current(key: "job")?.holder == "a", "run() keeps the lease after the work")
        run.cancel()
        try await run.value
    }

    /// `baton run` resigns on a stop signal while it prepares the command; the wait for leadership that follows
    /// must end, not start a campaign of its own (with the store unreachable it waited for ever).
    @Test func withLeadershipOfRunNeverCampaignsByItself() async throws {
        let memory = MemoryLeaseStore(clock: clock)
        _ = try await memory.acquire(key: "job", holder: "leader", ttl: .seconds(3600), metadata: nil)
        let store = FaultInjectingStore(wrapping: memory, clock: clock)
        let elector = try makeElector(LeaseStore(store), holder: "b")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.wait("b to follow the leader") { events in
            events.contains { if case .leaderChanged(let info) = $0 { info?.holder == "leader" } else { false } }
        }
        // Waiting in run()'s campaign: a resignation ends the wait.
        let waiting = Task { try await elector.withLeadershipOfRun { _ in "led" } }
        #expect(try await eventually { elector.isWaitingForLeadership }, "the wait to begin")
        elector.resign()
        try await run.value
        await #expect(throws: CancellationError.self) { try await waiting.value }
        // After run() ended: refused at once, without a request to the store.
        let acquires = store.callCount(.acquire)
        let ended = Flag()
        let late = Task {
            defer { ended.set() }
            return try await elector.withLeadershipOfRun { _ in "led" }
        }
        #expect(try await eventually(timeout: .seconds(5)) { ended.isSet }, "the late wait to end at once")
        late.cancel()
        await #expect(throws: CancellationError.self) { try await late.value }
        #expect(store.callCount(.acquire) == acquires)
        // The control: withLeadership campaigns by itself and asks the store.
        let campaigning = Task { try await elector.withLeadership { _ in "led" } }
        #expect(try await eventually { store.callCount(.acquire) > acquires }, "withLeadership's own campaign")
        campaigning.cancel()
        _ = try? await campaigning.value
    }

    @Test func aWaitingCandidateTakesOverWhenTheLeaderCrashes() async throws {
        let store = MemoryLeaseStore(clock: clock)
        // A "crashed" leader: it took the key and never renews or releases.
        _ = try await store.acquire(key: "job", holder: "crashed", ttl: .seconds(10), metadata: nil)
        let elector = try makeElector(LeaseStore(store), holder: "b")
        let log = EventLog(elector)
        let run = Task { try await elector.run() }
        await log.wait("b to see the crashed leader") { events in
            events.contains { if case .leaderChanged(let info) = $0 { info?.holder == "crashed" } else { false } }
        }
        #expect(log.elections.isEmpty)
        clock.advance(by: .seconds(10) + .milliseconds(5))  // the change feed re-reads just after the expiry
        await log.waitForElection()
        run.cancel()
        try await run.value
    }

    @Test func storeErrorsDetachAndUnreadEventsNeverStall() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore(clock: clock), clock: clock)
        let fastRetries = ElectorConfiguration(
            ttl: .seconds(10),
            backoff: .init(initial: .milliseconds(50), maximum: .milliseconds(100))
        )
        let elector = try LeaderElector(
            store: LeaseStore(store),
            key: "job",
            holder: "a",
            configuration: fastRetries,
            clock: clock,
            seed: 7
        )
        let unread = (0..<3).map { _ in elector.events }  // never read
        let log = EventLog(elector)
        store.partition(.failing)
        let run = Task { try await elector.run() }
        await log.wait("store errors") { events in
            events.filter { if case .storeError = $0 { true } else { false } }.count >= 1
        }
        #expect(elector.role == .detached)
        // Hundreds of failures, more than the unread streams buffer (256 events each).
        let failed = try await eventually(timeout: .seconds(60)) {
            clock.advance(by: .milliseconds(200))
            return store.callCount(.acquire) >= 300
        }
        #expect(failed, "300 failed acquires")
        #expect(try await eventually { log.all.count >= 300 }, "300 events recorded")
        store.heal()
        // An acquire that failed before the heal may schedule its retry after any one advance: keep time moving.
        let elected = try await eventually(timeout: .seconds(60)) {
            clock.advance(by: .milliseconds(200))
            return !log.elections.isEmpty
        }
        #expect(elected, "elected once the store works again")
        _ = unread
        run.cancel()
        try await run.value
    }

    @Test func configurationIsValidatedWithClearErrors() throws {
        let store = MemoryLeaseStore()
        let tooSlow = ElectorConfiguration(ttl: .seconds(3), renewInterval: .seconds(3))
        let error = #expect(throws: BatonError.self) {
            try LeaderElector(store: LeaseStore(store), key: "k", holder: "a", configuration: tooSlow)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("renewInterval") == true)
        let short = #expect(throws: BatonError.self) {
            try LeaderElector(
                store: LeaseStore(store), key: "k", holder: "a", configuration: .init(ttl: .milliseconds(50)))
        }
        #expect(short?.message.contains("ttl") == true)
        let badKey = #expect(throws: BatonError.self) {
            try LeaderElector(store: LeaseStore(store), key: "", holder: "a")
        }
        #expect(badKey?.code == .invalidArgument)
    }
}

/// A flag set once, read from any task.
private final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
