import Synchronization

/// The store requests of one campaign (acquire, renew, check, presence), each in a task of its own: the campaign
/// acts on their answers as they come and, when it ends, cancels those still in flight instead of waiting for them.
final class StoreRequests: Sendable {
    private struct State {
        var next = 0
        var tasks: [Int: Task<Void, Never>] = [:]
        var cancelled = false
    }

    private let state = Mutex(State())

    /// Starts `request` unless the campaign has ended.
    func start(_ request: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            guard !state.cancelled else { return }
            let id = state.next
            state.next += 1
            state.tasks[id] = Task { [weak self] in
                await request()
                _ = self?.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Cancels every request in flight, and any started later.
    func cancelAll() {
        let tasks = state.withLock { state in
            state.cancelled = true
            defer { state.tasks = [:] }
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
    }
}

/// A one-shot gate: ``wait()`` returns once ``open()`` has been called, whichever comes first.
final class OnceGate: Sendable {
    private struct State {
        var isOpen = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Opens the gate; returns true for the call that opened it.
    @discardableResult
    func open() -> Bool {
        let (opened, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            if state.isOpen { return (false, nil) }
            state.isOpen = true
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return opened
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isOpen = state.withLock { state in
                if !state.isOpen { state.waiter = continuation }
                return state.isOpen
            }
            if isOpen { continuation.resume() }
        }
    }
}

/// The ticks one campaign's state machine asked for, on the host's clock: each is a timer of ``HostTimers``
/// rather than a task sleeping until its time, so that thousands of electors in one process share one timer task.
/// Every tick asked for is delivered at its time, as a sleeping task would deliver it.
final class CampaignTicks: Sendable {
    private struct State {
        /// The host timers of the ticks to come, by the campaign's number for each.
        var timers: [Int: UInt64] = [:]
        var next = 0
        var cancelled = false
    }

    private let origin: ContinuousClock.Instant
    private let send: @Sendable (ElectorStateMachine.Input) -> Void
    private let state = Mutex(State())

    init(origin: ContinuousClock.Instant, send: @escaping @Sendable (ElectorStateMachine.Input) -> Void) {
        self.origin = origin
        self.send = send
    }

    /// Delivers a tick once the clock reads `time` (a time of the elector's clock, which starts at `origin`).
    func schedule(at time: Duration) {
        state.withLock { state in
            guard !state.cancelled else { return }
            let tick = state.next
            state.next += 1
            // The action takes this lock, so it finds its timer recorded even if it runs at once.
            state.timers[tick] = HostTimers.shared.schedule(at: origin.advanced(by: time)) { [weak self] in
                guard let self else { return }
                let live = self.state.withLock { $0.timers.removeValue(forKey: tick) != nil }
                if live { self.send(.tick) }
            }
        }
    }

    /// Cancels every tick still to come, and any asked for later.
    func cancelAll() {
        let timers = state.withLock { state in
            state.cancelled = true
            defer { state.timers = [:] }
            return state.timers.values
        }
        for id in timers { HostTimers.shared.cancel(id) }
    }
}

/// One campaign's following of the store's change feed (see ``LeaderElector/followChanges(_:failures:)``): the
/// observation under way, or the task waiting to subscribe again, until ``stop()``.
final class ChangeFollower: Sendable {
    private struct State {
        var observation: ChangeObservation?
        var retry: Task<Void, Never>?
        var stopped = false
    }

    /// Hands an input to the campaign.
    let send: @Sendable (ElectorStateMachine.Input) -> Void
    private let state = Mutex(State())

    init(send: @escaping @Sendable (ElectorStateMachine.Input) -> Void) {
        self.send = send
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Keeps `observation` as the one under way (cancelled at once if stopped already).
    func observing(_ observation: ChangeObservation) {
        let stopped = state.withLock { state in
            if !state.stopped {
                state.observation = observation
                state.retry = nil
            }
            return state.stopped
        }
        if stopped { observation.cancel() }
    }

    /// Keeps `retry` as the wait before subscribing again (cancelled at once if stopped already).
    func retrying(_ retry: Task<Void, Never>) {
        let stopped = state.withLock { state in
            if !state.stopped {
                state.observation = nil
                state.retry = retry
            }
            return state.stopped
        }
        if stopped { retry.cancel() }
    }

    /// Stops following: cancels the observation or the wait.
    func stop() {
        let (observation, retry) = state.withLock { state in
            state.stopped = true
            defer {
                state.observation = nil
                state.retry = nil
            }
            return (state.observation, state.retry)
        }
        observation?.cancel()
        retry?.cancel()
    }
}
