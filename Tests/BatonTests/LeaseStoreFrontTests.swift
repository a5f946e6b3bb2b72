@_spi(BatonStoreKit) import Baton
import BatonTestKit
import ServiceLifecycle
import Synchronization
import Testing

/// The front every caller uses: deadlines, the run state, error mapping, validation before the driver.
@Suite("LeaseStore front")
struct LeaseStoreFrontTests {
    @Test func aRequestWithoutAnAnswerByTheDeadlineIsATimeoutAndIsCancelled() async throws {
        let clock = ManualClock()
        let faults = FaultInjectingStore(wrapping: MemoryLeaseStore(clock: clock), clock: clock)
        faults.setFault(.hang, for: .operation(.acquire))
        let store = LeaseStore(faults, configuration: .init(requestTimeout: .seconds(3)), clock: clock)
        let call = Task { try await store.acquire(key: "k", holder: "a", ttl: .seconds(10)) }
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(2))
        #expect(faults.callCount(.acquire) == 1)
        clock.advance(by: .seconds(1))
        await expectCode(.timeout) { try await call.value }
        // The hanging call was cancelled: the driver saw one call, and the key was never taken.
        faults.clearFaults()
        #expect(try await store.current(key: "k") == nil)
    }

    @Test func onTheHostClockAHangingRequestTimesOutAndTheOthersAnswer() async throws {
        let faults = FaultInjectingStore(wrapping: MemoryLeaseStore())
        faults.setFault(.hang, for: .operation(.acquire))
        let store = LeaseStore(faults, configuration: .init(requestTimeout: .milliseconds(200)))
        let hanging = Task { try await store.acquire(key: "k", holder: "a", ttl: .seconds(10)) }
        // Requests that answer meanwhile are not held up by the watcher of the hanging one's deadline.
        for _ in 0..<100 { #expect(try await store.current(key: "k") == nil) }
        await expectCode(.timeout) { try await hanging.value }
        faults.clearFaults()
        #expect(try await store.acquire(key: "k", holder: "a", ttl: .seconds(10)).lease?.holder == "a")
    }

    @Test func aRequestWhoseDriverIgnoresCancellationStillEndsAtTheDeadline() async throws {
        let clock = ManualClock()
        let driver = DeafDriver()
        let store = LeaseStore(driver, configuration: .init(requestTimeout: .seconds(3)), clock: clock)
        let ended = Atomic(false)
        let call = Task {
            defer { ended.store(true, ordering: .relaxed) }
            return try await store.current(key: "k")
        }
        await clock.waitForSleepers(atLeast: 1)
        try #require(try await eventually { driver.waiting }, "the driver got the request")
        clock.advance(by: .seconds(3))
        // The driver goes on waiting, cancelled or not; the caller has its answer at the deadline.
        #expect(try await eventually(timeout: .seconds(5)) { ended.load(ordering: .relaxed) }, "no answer")
        #expect(driver.waiting)
        driver.answer()
        await expectCode(.timeout) { try await call.value }
    }

    @Test func aDriverThatHonoursAbortRunsInTheCallersTaskAndItsWaitEndsAtTheDeadline() async throws {
        let clock = ManualClock()
        let driver = DeafDriver(honoursRequestAbort: true)
        let store = LeaseStore(driver, configuration: .init(requestTimeout: .seconds(3)), clock: clock)
        let call = Task { () -> (caller: Int?, code: BatonError.Code?, cancelled: Bool) in
            let caller = withUnsafeCurrentTask { $0?.hashValue }
            do {
                _ = try await store.current(key: "k")
                return (caller, nil, Task.isCancelled)
            } catch let error as BatonError {
                return (caller, error.code, Task.isCancelled)
            }
        }
        await clock.waitForSleepers(atLeast: 1)
        try #require(try await eventually { driver.waiting }, "the driver got the request")
        clock.advance(by: .seconds(3))
        let outcome = try await call.value
        #expect(outcome.code == .timeout)
        #expect(outcome.caller != nil && driver.currentRanIn == outcome.caller, "ran in the caller's task")
        // The deadline ended the driver's wait, without cancelling the caller.
        #expect(!driver.waiting)
        #expect(!outcome.cancelled)
    }

    @Test func cancellingTheCallerEndsARequestRunInItsTask() async throws {
        let driver = DeafDriver(honoursRequestAbort: true)
        let store = LeaseStore(driver, configuration: .init(requestTimeout: .seconds(60)))
        let call = Task { try await store.current(key: "k") }
        try #require(try await eventually { driver.waiting }, "the driver got the request")
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        #expect(!driver.waiting)
    }

    @Test func aCallBeforeRunWaitsForItThenGoesThrough() async throws {
        let clock = ManualClock()
        let driver = RunGatedDriver()
        let store = LeaseStore(driver, configuration: .init(startTimeout: .seconds(1)), clock: clock)
        let call = Task { try await store.acquire(key: "k", holder: "a", ttl: .seconds(10)) }
        await clock.waitForSleepers(atLeast: 1)
        let running = Task { try await store.run() }
        #expect(try await call.value.lease?.holder == "a")
        running.cancel()
        try await running.value
    }

    @Test func aForgottenRunIsAClearErrorAfterTheStartTimeout() async throws {
        let clock = ManualClock()
        let store = LeaseStore(RunGatedDriver(), configuration: .init(startTimeout: .seconds(1)), clock: clock)
        let call = Task { try await store.current(key: "k") }
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(1))
        let error = await #expect(throws: BatonError.self) { try await call.value }
        #expect(error?.code == .storeUnavailable)
        #expect(error?.message.contains("not running") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("run()") == true)
        // A change feed asked for before run() ends with the same error.
        let feed = Task { () async throws -> Void in for try await _ in try store.changes(key: "k") {} }
        await clock.waitForSleepers(atLeast: 1)
        clock.advance(by: .seconds(1))
        let feedError = await #expect(throws: BatonError.self) { try await feed.value }
        #expect(feedError?.message.contains("not running") == true)
    }

    @Test func aStoreRunsOnceAndRefusesCallsAfterItStopped() async throws {
        let store = LeaseStore(RunGatedDriver())
        let running = Task { try await store.run() }
        try await waitUntil { store.driverStarted }
        await expectCode(.invalidArgument) { try await store.run() }
        running.cancel()
        try await running.value
        let error = await #expect(throws: BatonError.self) { try await store.current(key: "k") }
        #expect(error?.code == .storeUnavailable)
        #expect(error?.message.contains("has stopped") == true)
    }

    @Test func withRunningRunsTheStoreAroundItsBodyOnly() async throws {
        let driver = RunGatedDriver()
        let store = LeaseStore(driver)
        let lease = try await store.withRunning { store in
            try await store.acquire(key: "k", holder: "a", ttl: .seconds(10)).lease
        }
        #expect(lease?.token == 1)
        #expect(driver.runs == 1 && !driver.isRunning)
    }

    @Test func anErrorTheDriverDidNotMapBecomesStoreUnavailableNamingOnlyItsType() async throws {
        let store = LeaseStore(ThrowingDriver())
        let error = await #expect(throws: BatonError.self) { try await store.current(key: "k") }
        #expect(error?.code == .storeUnavailable)
        #expect(error?.message.contains("SecretBearingError") == true)
        #expect(error?.message.contains("hunter2") == false)
        #expect(error?.description.contains("hunter2") == false)
    }

    @Test func argumentsAreCheckedBeforeTheDriverIsCalled() async throws {
        let driver = ThrowingDriver()
        let store = LeaseStore(driver)
        await expectCode(.invalidArgument) { try await store.acquire(key: "", holder: "a", ttl: .seconds(1)) }
        await expectCode(.invalidArgument) {
            try await store.acquire(
                key: "k", holder: "a", ttl: .seconds(1), metadata: String(repeating: "m", count: 4097))
        }
        await expectCode(.invalidArgument) { try await store.claim(system: "s", round: "r\n", candidate: "c") }
        await expectCode(.invalidArgument) { try await store.heartbeat(group: "g", member: "m", ttl: .zero) }
        #expect(throws: BatonError.self) { try store.changes(key: String(repeating: "k", count: 257)) }
        #expect(driver.calls == 0)
    }

    private func waitUntil(_ condition: () async -> Bool) async throws {
        for _ in 0..<500 {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the condition did not hold within 5 s")
    }
}

extension LeaseStore {
    /// Whether the test driver under this front has started its run.
    fileprivate var driverStarted: Bool { (driver as? RunGatedDriver)?.isRunning ?? false }
}

/// A memory store that, like a store with connections, needs `run()`, and counts its runs.
private final class RunGatedDriver: LeaseStoreDriver {
    private let base = MemoryLeaseStore()
    private let state = Mutex((runs: 0, running: false))
    var storeName: String { "gated" }
    var runs: Int { state.withLock { $0.runs } }
    var isRunning: Bool { state.withLock { $0.running } }

    func run() async throws {
        state.withLock { $0 = (runs: $0.runs + 1, running: true) }
        defer { state.withLock { $0.running = false } }
        try? await gracefulShutdown()
    }

    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata)
    }
    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease { try await base.renew(lease, ttl: ttl) }
    func release(_ lease: Lease) async throws { try await base.release(lease) }
    func current(key: String) async throws -> LeaderInfo? { try await base.current(key: key) }
    func changes(key: String) throws -> LeaderChanges { try base.changes(key: key) }
    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult {
        try await base.claim(system: system, round: round, candidate: candidate, retention: retention)
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
    func leave(group: String, member: String) async throws { try await base.leave(group: group, member: member) }
    func members(group: String) async throws -> [String] { try await base.members(group: group) }
}

/// A memory store whose `current` waits until the test answers it, deaf to cancellation (as an await inside a
/// store client can be).
private final class DeafDriver: LeaseStoreDriver {
    private let base = MemoryLeaseStore()
    private let gate = Mutex<(waiting: Bool, continuation: CheckedContinuation<Void, any Error>?)>((false, nil))
    private let task = Mutex<Int?>(nil)
    let honoursRequestAbort: Bool
    var storeName: String { "deaf" }
    var needsRun: Bool { false }
    var waiting: Bool { gate.withLock { $0.waiting } }
    /// The hash of the task that ran the last `current`.
    var currentRanIn: Int? { task.withLock { $0 } }

    /// With `honoursRequestAbort`, the waiting `current` ends when its request is aborted; else it waits for
    /// ``answer()`` whatever happens.
    init(honoursRequestAbort: Bool = false) {
        self.honoursRequestAbort = honoursRequestAbort
    }

    /// Ends the waiting `current`.
    func answer() {
        let continuation = gate.withLock { gate in
            defer { gate = (false, nil) }
            return gate.continuation
        }
        continuation?.resume()
    }

    private func wait() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if honoursRequestAbort, let reason = RequestAbort.current?.reason {
                continuation.resume(throwing: reason)
                return
            }
            gate.withLock { $0 = (true, continuation) }
        }
    }

    func run() async throws {}
    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata)
    }
    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease { try await base.renew(lease, ttl: ttl) }
    func release(_ lease: Lease) async throws { try await base.release(lease) }
    func current(key: String) async throws -> LeaderInfo? {
        task.withLock { $0 = withUnsafeCurrentTask { $0?.hashValue } }
        if honoursRequestAbort {
            try await RequestAbort.whileWaiting {
                try await wait()
            } onAbort: { [self] reason in
                let continuation = gate.withLock { gate in
                    defer { gate = (false, nil) }
                    return gate.continuation
                }
                continuation?.resume(throwing: reason)
            }
        } else {
            try await wait()
        }
        return try await base.current(key: key)
    }
    func changes(key: String) throws -> LeaderChanges { try base.changes(key: key) }
    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult {
        try await base.claim(system: system, round: round, candidate: candidate, retention: retention)
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
    func leave(group: String, member: String) async throws { try await base.leave(group: group, member: member) }
    func members(group: String) async throws -> [String] { try await base.members(group: group) }
}

/// An error of a store client whose description carries a secret.
private struct SecretBearingError: Error, CustomStringConvertible {
    var description: String { "connection to redis://admin:hunter2@cache failed" }
}

/// A driver whose every operation throws an error it did not map, and counts the calls that reached it.
private final class ThrowingDriver: LeaseStoreDriver {
    private let count = Atomic(0)
    var storeName: String { "throwing" }
    var needsRun: Bool { false }
    var calls: Int { count.load(ordering: .relaxed) }

    private func fail() throws -> Never {
        count.add(1, ordering: .relaxed)
        throw SecretBearingError()
    }

    func run() async throws {}
    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try fail()
    }
    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease { try fail() }
    func release(_ lease: Lease) async throws { try fail() }
    func current(key: String) async throws -> LeaderInfo? { try fail() }
    func changes(key: String) throws -> LeaderChanges { try fail() }
    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult {
        try fail()
    }
    func winner(system: String, round: String) async throws -> String? { try fail() }
    func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try fail()
    }
    func completion(system: String, round: String) async throws -> String? { try fail() }
    func heartbeat(group: String, member: String, ttl: Duration) async throws { try fail() }
    func leave(group: String, member: String) async throws { try fail() }
    func members(group: String) async throws -> [String] { try fail() }
}
