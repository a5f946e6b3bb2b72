@_spi(BatonStoreKit) import Baton
import ServiceLifecycle
import Synchronization

/// A ``LeaseStoreDriver`` that forwards to another store and injects faults on demand: failures, lost replies,
/// latency, hangs and network partitions, set and cleared at runtime from any task.
///
/// Use it to test how code built on a store (the elector, the HTTP service, the CLI) behaves when the store
/// is slow, down or unreachable, without a real network:
///
/// ```swift
/// let clock = ManualClock()
/// let store = FaultInjectingStore(wrapping: MemoryLeaseStore(clock: clock), clock: clock)
/// store.setFault(.fail, for: .operation(.renew))     // renewals fail, everything else works
/// store.partition()                                    // now every call fails
/// store.heal()
/// ```
///
/// ## How a call is handled
///
/// 1. It is counted (``callCount(_:)``), whatever happens next.
/// 2. The faults that apply are looked up: the partition, the fault of every ``Scope`` that covers the
///    operation (at most one fault per scope; several scopes may apply), and the ``FaultPlan``'s draw.
///    - a partition in ``PartitionMode/hanging`` mode, or any ``Fault/hang``, suspends the call until the
///      faults change (then they are looked up again) or the calling task is cancelled (`CancellationError`);
///    - a partition in ``PartitionMode/failing`` mode, any ``Fault/fail`` or a drawn failure throws
///      ``BatonError/Code/storeUnavailable`` without calling the wrapped store;
///    - otherwise the latencies that apply (every ``Fault/latency(_:)`` plus the drawn latency, added up) are
///      slept on the injected clock, and the faults are looked up once more (without latency), so a partition
///      that starts while a call is "in flight" fails or hangs it.
/// 3. The wrapped store is called. If a ``Fault/loseReply`` or a drawn lost reply applies, its answer is then
///    thrown away and the call throws `storeUnavailable`: the operation *was* applied, but the caller cannot
///    know it (the outcome of a timeout).
///
/// ``changes(key:)`` streams are subscribed lazily, with the faults applied to the subscription: a failure
/// ends the stream with `storeUnavailable`, a hang keeps it silent until the faults change, latency delays
/// the first observation. Open streams end with `storeUnavailable` when a partition starts or when a
/// ``Fault/fail`` covering ``Operation/changes`` is set (a broken watch), so consumers must subscribe again.
///
/// ``run()`` is faulted like every other call before it runs the wrapped store.
public final class FaultInjectingStore: LeaseStoreDriver {
    /// The wrapped store's name.
    public var storeName: String { base.storeName }
    /// Whether the wrapped store needs ``run()``.
    public var needsRun: Bool { base.needsRun }

    /// What the ``FaultPlan`` decided for one call.
    private struct Draw {
        var fail: Bool
        var loseReply: Bool
        var latency: Duration
    }

    private enum Decision {
        case hang
        case fail(BatonError)
        case proceed(latency: Duration, loseReply: Bool)
    }

    private struct State {
        var faults: [Scope: Fault] = [:]
        var partition: PartitionMode?
        var plan: FaultPlan?
        var random = SeededRandom(seed: 0)
        /// Bumped on every change of faults, so hanging calls know to look again.
        var generation: UInt64 = 0
        var calls: [Operation: Int] = [:]
        var hanging = Parking<Operation>()
        var hangWatchers = Parking<Int>()
        var nextStreamID: UInt64 = 0
        var streams: [UInt64: LeaderChanges.Continuation] = [:]
        /// Whether ``changes(key:)`` streams drop what the wrapped store delivers, without ending.
        var silent = false
        /// Leader observations passed on by ``changes(key:)`` streams.
        var delivered = 0

        /// Whether open `changes` streams count as broken: they end when this turns true.
        var breaksStreams: Bool {
            partition != nil || faults.contains { $0.key.covers(.changes) && $0.value == .fail }
        }

        mutating func draw(for operation: Operation) -> Draw? {
            guard let plan, plan.scope.covers(operation) else { return nil }
            // Always draw the same four numbers, so one call's outcome never shifts the sequence of the next.
            let failRoll = Double.random(in: 0..<1, using: &random)
            let lostRoll = Double.random(in: 0..<1, using: &random)
            let latencyRoll = Double.random(in: 0..<1, using: &random)
            let lower = max(plan.latency.lowerBound.batonNanoseconds, 0)
            let upper = max(plan.latency.upperBound.batonNanoseconds, lower)
            let nanoseconds = Int64.random(in: lower...upper, using: &random)
            return Draw(
                fail: failRoll < plan.failureProbability,
                loseReply: lostRoll < plan.lostReplyProbability,
                latency: latencyRoll < plan.latencyProbability ? .nanoseconds(nanoseconds) : .zero
            )
        }

        func decide(_ operation: Operation, draw: Draw?, includeLatency: Bool) -> Decision {
            switch partition {
            case .hanging: return .hang
            case .failing:
                return .fail(.storeUnavailable("\(operation) failed: the store is partitioned away (fault injected)"))
            case nil: break
            }
            let applicable = faults.filter { $0.key.covers(operation) }.map(\.value)
            if applicable.contains(.hang) { return .hang }
            if applicable.contains(.fail) || draw?.fail == true {
                return .fail(.storeUnavailable("\(operation) failed (fault injected)"))
            }
            var latency = Duration.zero
            if includeLatency {
                for case .latency(let extra) in applicable { latency += max(extra, .zero) }
                latency += draw?.latency ?? .zero
            }
            let loseReply = applicable.contains(.loseReply) || draw?.loseReply == true
            return .proceed(latency: latency, loseReply: loseReply)
        }

        mutating func takeSatisfiedWatchers() -> [CheckedContinuation<Void, any Error>] {
            let count = hanging.count
            return hangWatchers.take { $0 <= count }.map(\.entry.continuation)
        }
    }

    /// The store that calls are forwarded to.
    public let base: any LeaseStoreDriver
    private let clock: BatonClock
    private let state = Mutex(State())

    /// Wraps `base`, with no faults set.
    /// - Parameters:
    ///   - base: the store that calls are forwarded to.
    ///   - clock: the clock injected latency is slept on; pass a ``ManualClock`` to control latency in tests.
    public convenience init<C: Clock>(wrapping base: any LeaseStoreDriver, clock: C = ContinuousClock())
    where C.Duration == Duration {
        self.init(wrapping: base, batonClock: BatonClock(clock))
    }

    /// Wraps `base`, with no faults set, sleeping injected latency on `batonClock`.
    @_spi(BatonStoreKit) public init(wrapping base: any LeaseStoreDriver, batonClock: BatonClock) {
        self.base = base
        self.clock = batonClock
    }

    // MARK: Controlling faults

    /// Sets the fault for the calls in `scope`, replacing the one set for that same scope; nil removes it.
    ///
    /// Faults of different scopes combine (see the type's documentation). The change applies to calls that
    /// start afterwards and to calls hanging now, which look at the faults again.
    public func setFault(_ fault: Fault?, for scope: Scope = .all) {
        update { $0.faults[scope] = fault }
    }

    /// The fault set for exactly `scope`, if any.
    public func fault(for scope: Scope) -> Fault? {
        state.withLock { $0.faults[scope] }
    }

    /// Removes every fault, the partition and the plan: the store behaves like the wrapped store again, and
    /// hanging calls go on. Call counts are kept.
    public func clearFaults() {
        update { state in
            state.faults = [:]
            state.partition = nil
            state.plan = nil
        }
    }

    /// Cuts the store off: every call fails or hangs (by `mode`) until ``heal()``, whatever else is set, and open
    /// ``changes(key:)`` streams end with ``BatonError/Code/storeUnavailable``.
    public func partition(_ mode: PartitionMode = .failing) {
        update { $0.partition = mode }
    }

    /// Ends the partition; hanging calls go on (other faults still apply).
    public func heal() {
        update { $0.partition = nil }
    }

    /// Makes open and new ``changes(key:)`` streams go silent (with `true`): they stay open and report no error,
    /// but deliver nothing, as a feed on a connection that a NAT or firewall dropped without a reset does. Other
    /// operations are not affected. `false` lets them deliver again (what was dropped meanwhile stays lost).
    public func silenceChanges(_ silent: Bool) {
        state.withLock { $0.silent = silent }
    }

    /// The partition in force, or nil.
    public var partitionMode: PartitionMode? {
        state.withLock { $0.partition }
    }

    /// Sets (or with nil removes) the random fault plan, restarting its random sequence from `plan.seed`.
    public func setPlan(_ plan: FaultPlan?) {
        update { state in
            state.plan = plan
            state.random = SeededRandom(seed: plan?.seed ?? 0)
        }
    }

    /// The random fault plan in force, or nil.
    public var plan: FaultPlan? {
        state.withLock { $0.plan }
    }

    // MARK: Observing calls

    /// How many times `operation` was called since the store was made (or since ``resetCallCounts()``),
    /// including calls that were rejected, failed or are still running.
    public func callCount(_ operation: Operation) -> Int {
        state.withLock { $0.calls[operation] ?? 0 }
    }

    /// How many calls of every operation were made since the store was made (or since ``resetCallCounts()``).
    public var totalCallCount: Int {
        state.withLock { $0.calls.values.reduce(0, +) }
    }

    /// Sets every call count back to zero.
    public func resetCallCounts() {
        state.withLock { $0.calls = [:] }
    }

    /// The number of calls suspended by a hang fault or a hanging partition now.
    public var hangingCallCount: Int {
        state.withLock { $0.hanging.count }
    }

    /// How many leader observations ``changes(key:)`` streams have passed on to their consumers so far.
    public var deliveredChangeCount: Int {
        state.withLock { $0.delivered }
    }

    /// The number of ``changes(key:)`` streams open now (not yet ended or abandoned by their consumer).
    public var openChangeStreamCount: Int {
        state.withLock { $0.streams.count }
    }

    /// Suspends until at least `count` calls hang (see ``hangingCallCount``); returns at once if they already
    /// do. Woken by calls starting to hang, never by polling. Returns early if the waiting task is cancelled.
    public func waitForHangingCalls(atLeast count: Int) async {
        let id: UInt64? = state.withLock { state in
            state.hanging.count >= count ? nil : state.hangWatchers.reserve()
        }
        guard let id else { return }
        try? await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.hanging.count >= count {
                        _ = state.hangWatchers.unreserve(id)
                        return true
                    }
                    return !state.hangWatchers.park(id, tag: count, continuation: continuation)
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.hangWatchers.cancel(id) }?.resume(throwing: CancellationError())
        }
    }

    // MARK: LeaseStore

    /// Forwards to the wrapped store's `acquire`, with the faults that apply.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: false)
    }

    /// Whether the wrapped store queues waiting candidates.
    public var queuesWaiters: Bool { base.queuesWaiters }

    /// How often the wrapped store's waiting candidates ask again per ttl.
    public var queueAsksPerTTL: Int { base.queueAsksPerTTL }

    /// Forwards to the wrapped store's `acquire`, waiting or not, with the faults that apply.
    public func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        try await perform(.acquire) {
        } call: {
            try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: waiting)
        }
    }

    /// Forwards to the wrapped store's `renew`, with the faults that apply.
    public func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try await perform(.renew) {
        } call: {
            try await base.renew(lease, ttl: ttl)
        }
    }

    /// Forwards to the wrapped store's `release`, with the faults that apply.
    public func release(_ lease: Lease) async throws {
        try await perform(.release) {
        } call: {
            try await base.release(lease)
        }
    }

    /// Forwards to the wrapped store's `leaveQueue`, with the faults that apply.
    public func leaveQueue(key: String, holder: String) async throws {
        try await perform(.leaveQueue) {
        } call: {
            try await base.leaveQueue(key: key, holder: holder)
        }
    }

    /// Forwards to the wrapped store's `current`, with the faults that apply.
    public func current(key: String) async throws -> LeaderInfo? {
        try await perform(.current) {
        } call: {
            try await base.current(key: key)
        }
    }

    /// The wrapped store's `changes`, subscribed when the stream starts, with the faults that apply (see the
    /// type's documentation). Throws `invalidArgument` at once for a malformed key.
    public func changes(key: String) throws -> LeaderChanges {
        count(.changes)
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            let id = state.nextStreamID
            state.nextStreamID += 1
            state.streams[id] = continuation
            return id
        }
        // The handler is installed before the task exists: a stream ended at once must still stop its task.
        let forwarding = TaskHandle()
        continuation.onTermination = { [weak self] _ in
            forwarding.cancel()
            self?.forgetStream(id)
        }
        let base = base
        forwarding.start {
            do {
                if try await self.inject(.changes) { throw Self.lostReply(.changes) }
                for try await info in try base.changes(key: key) {
                    let silent = self.state.withLock { state in
                        if !state.silent { state.delivered += 1 }
                        return state.silent
                    }
                    if silent { continue }
                    if case .terminated = continuation.yield(info) { break }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
            self.forgetStream(id)
        }
        return stream
    }

    /// Forwards to the wrapped store's `claim`, with the faults that apply.
    public func claim(
        system: String,
        round: String,
        candidate: String,
        retention: Duration
    ) async throws -> ClaimResult {
        try await perform(.claim) {
        } call: {
            try await base.claim(system: system, round: round, candidate: candidate, retention: retention)
        }
    }

    /// Forwards to the wrapped store's `winner`, with the faults that apply.
    public func winner(system: String, round: String) async throws -> String? {
        try await perform(.winner) {
        } call: {
            try await base.winner(system: system, round: round)
        }
    }

    /// Forwards to the wrapped store's `complete`, with the faults that apply.
    public func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await perform(.complete) {
        } call: {
            try await base.complete(system: system, round: round, by: completer, retention: retention)
        }
    }

    /// Forwards to the wrapped store's `completion`, with the faults that apply.
    public func completion(system: String, round: String) async throws -> String? {
        try await perform(.completion) {
        } call: {
            try await base.completion(system: system, round: round)
        }
    }

    /// Forwards to the wrapped store's `heartbeat`, with the faults that apply.
    public func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try await perform(.heartbeat) {
        } call: {
            try await base.heartbeat(group: group, member: member, ttl: ttl)
        }
    }

    /// Forwards to the wrapped store's `leave`, with the faults that apply.
    public func leave(group: String, member: String) async throws {
        try await perform(.leave) {
        } call: {
            try await base.leave(group: group, member: member)
        }
    }

    /// Forwards to the wrapped store's `members`, with the faults that apply.
    public func members(group: String) async throws -> [String] {
        try await perform(.members) {
        } call: {
            try await base.members(group: group)
        }
    }

    /// Forwards to the wrapped store's `leases`, with the faults that apply.
    public func leases(prefix: String, limit: Int) async throws -> [HeldLease] {
        try await perform(.leases) {
        } call: {
            try await base.leases(prefix: prefix, limit: limit)
        }
    }

    /// Forwards to the wrapped store's `rounds`, with the faults that apply.
    public func rounds(system: String, limit: Int) async throws -> [RoundSummary] {
        try await perform(.rounds) {
        } call: {
            try await base.rounds(system: system, limit: limit)
        }
    }

    /// Runs the wrapped store, once the faults that apply let it start.
    public func run() async throws {
        try await perform(.run) {
        } call: {
            try await base.run()
        }
    }

    // MARK: Helpers

    private func count(_ operation: Operation) {
        state.withLock { $0.calls[operation, default: 0] += 1 }
    }

    private func perform<T>(
        _ operation: Operation,
        validate: () throws -> Void,
        call: () async throws -> T
    ) async throws -> T {
        count(operation)
        try validate()
        let loseReply = try await inject(operation)
        let result = try await call()
        if loseReply { throw Self.lostReply(operation) }
        return result
    }

    /// Applies the faults to one call: returns whether its reply is to be lost, or throws, after any latency
    /// and hang.
    private func inject(_ operation: Operation) async throws -> Bool {
        let draw = state.withLock { $0.draw(for: operation) }
        var latencyDone = false
        while true {
            let (decision, generation) = state.withLock { state in
                (state.decide(operation, draw: draw, includeLatency: !latencyDone), state.generation)
            }
            switch decision {
            case .hang:
                try await hang(operation, generation: generation)
            case .fail(let error):
                throw error
            case .proceed(let latency, let loseReply):
                guard latency > .zero else { return loseReply }
                try await clock.sleep(for: latency)
                latencyDone = true
            }
        }
    }

    /// Suspends until the faults change from `generation` or the task is cancelled.
    private func hang(_ operation: Operation, generation: UInt64) async throws {
        let id: UInt64? = state.withLock { state in
            state.generation == generation ? state.hanging.reserve() : nil
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Verdict { case parked, changed, cancelled }
                let (verdict, watchers) = state.withLock { state -> (Verdict, [CheckedContinuation<Void, any Error>]) in
                    if state.generation != generation {
                        return (state.hanging.unreserve(id) ? .changed : .cancelled, [])
                    }
                    guard state.hanging.park(id, tag: operation, continuation: continuation) else {
                        return (.cancelled, [])
                    }
                    return (.parked, state.takeSatisfiedWatchers())
                }
                switch verdict {
                case .parked: break
                case .changed: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
                for watcher in watchers { watcher.resume() }
            }
        } onCancel: {
            state.withLock { $0.hanging.cancel(id) }?.resume(throwing: CancellationError())
        }
    }

    /// Changes the faults, wakes hanging calls to look again, and ends open streams if they just broke.
    private func update(_ change: @Sendable (inout State) -> Void) {
        let (hanging, broken) = state.withLock { state in
            let wasBreaking = state.breaksStreams
            change(&state)
            state.generation += 1
            var broken: [LeaderChanges.Continuation] = []
            if !wasBreaking && state.breaksStreams {
                broken = Array(state.streams.values)
                state.streams = [:]
            }
            return (state.hanging.takeAll(), broken)
        }
        for entry in hanging { entry.continuation.resume() }
        let error = BatonError.storeUnavailable("changes ended: the store is unreachable (fault injected)")
        for continuation in broken { continuation.finish(throwing: error) }
    }

    private func forgetStream(_ id: UInt64) {
        state.withLock { _ = $0.streams.removeValue(forKey: id) }
    }

    private static func lostReply(_ operation: Operation) -> BatonError {
        .storeUnavailable("\(operation): the reply was lost (fault injected); the operation may have been applied")
    }
}
