import Synchronization

/// One campaign of an elector: its state machine, fed one input at a time, with no task of its own.
///
/// Inputs (answers of store requests, ticks, observations of the change feed, a resignation) arrive from
/// whatever task produced them. The first to arrive while none is being handled handles it, and any that arrive
/// meanwhile, in order, then performs the machine's actions: those never wait (requests run in tasks of their
/// own, ticks are timers), so handling is short. A waiting elector therefore costs no task beyond its caller's,
/// which sleeps in ``run()`` until the campaign ends, and an input costs no hop to another task.
package final class Campaign: Sendable {
    typealias Input = ElectorStateMachine.Input

    private struct State {
        var machine: ElectorStateMachine
        /// Inputs not yet handled, oldest first from `head`.
        var queue: [Input] = []
        var head = 0
        /// An input is being handled: inputs arriving meanwhile wait in the queue for the same handler.
        var handling = false
        /// ``run()`` has started the machine. Inputs sent before (a resignation right after the campaign was
        /// claimed) wait in the queue and are handled once it has.
        var started = false
        /// An acquire has been answered: from then on the change feed is followed while not leading.
        var acquireAnswered = false
        /// How the campaign ended, once it did; no input is taken after that.
        var end: LeaderElector.CampaignEnd?
        var endWaiter: CheckedContinuation<LeaderElector.CampaignEnd, Never>?
        var ticks: CampaignTicks?
        /// The following of the change feed under way (none while leading).
        var follower: ChangeFollower?
        /// Releases under way (each waits for its term's work): the campaign ends after them.
        var releases: [Task<Void, Never>] = []
        /// Ticks on a clock other than the host's: tasks sleeping on it.
        var sleepers: [Int: Task<Void, Never>] = [:]
        var nextSleeper = 0
    }

    private let elector: LeaderElector
    let requests = StoreRequests()
    private let state: Mutex<State>

    init(elector: LeaderElector, machine: ElectorStateMachine) {
        self.elector = elector
        self.state = Mutex(State(machine: machine))
    }

    /// Hands `input` to the machine (now, or after the inputs before it). Dropped once the campaign has ended.
    func send(_ input: Input) {
        let handle = state.withLock { state -> Bool in
            guard state.end == nil else { return false }
            state.queue.append(input)
            if state.handling || !state.started { return false }
            state.handling = true
            return true
        }
        if handle { handleQueued() }
    }

    /// Starts the campaign, then waits until it ends (a resignation, a graceful shutdown, or the caller's
    /// cancellation, which stops it) and returns how it ended.
    func run() async -> LeaderElector.CampaignEnd {
        let ticks = elector.clock.hostOrigin.map { origin in
            CampaignTicks(origin: origin) { [weak self] input in self?.send(input) }
        }
        let actions = state.withLock { state -> [ElectorStateMachine.Action] in
            state.ticks = ticks
            state.handling = true
            state.started = true
            return state.machine.start(now: elector.clock.now())
        }
        let deadline = state.withLock { $0.machine.termDeadline }
        if let end = elector.perform(actions, deadline: deadline, in: self) {
            finish(end)
        } else {
            handleQueued()
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<LeaderElector.CampaignEnd, Never>) in
                let end = state.withLock { state -> LeaderElector.CampaignEnd? in
                    if state.end == nil { state.endWaiter = continuation }
                    return state.end
                }
                if let end { continuation.resume(returning: end) }
            }
        } onCancel: {
            self.send(.stop)
        }
    }

    /// Stops what the campaign still runs once it has ended: the change feed, requests in flight (cancelled, not
    /// waited for: one hung on a connection that died silently must not keep the campaign from ending), and
    /// ticks; then waits for the releases under way.
    func close() async {
        let (ticks, follower, releases, sleepers) = state.withLock { state in
            defer {
                state.ticks = nil
                state.follower = nil
                state.releases = []
                state.sleepers = [:]
            }
            return (state.ticks, state.follower, state.releases, state.sleepers.values)
        }
        follower?.stop()
        requests.cancelAll()
        ticks?.cancelAll()
        for sleeper in sleepers { sleeper.cancel() }
        for release in releases { await release.value }
    }

    // MARK: Used by the actions

    /// Delivers a tick at `time` of the elector's clock.
    func schedule(at time: Duration) {
        let ticks = state.withLock { $0.ticks }
        if let ticks {
            ticks.schedule(at: time)
            return
        }
        // A test's clock: a task sleeping on it, as a test expects to see.
        let clock = elector.clock
        state.withLock { state in
            guard state.end == nil else { return }
            let id = state.nextSleeper
            state.nextSleeper += 1
            state.sleepers[id] = Task { [weak self] in
                guard (try? await clock.sleep(until: time)) != nil else { return }
                self?.state.withLock { _ = $0.sleepers.removeValue(forKey: id) }
                self?.send(.tick)
            }
        }
    }

    /// Runs `release` (which waits for its term's work) in a task of its own; the campaign ends after it.
    func startRelease(_ release: @escaping @Sendable () async -> Void) {
        let task = Task { await release() }
        state.withLock { $0.releases.append(task) }
    }

    // MARK: Handling

    /// Handles the queued inputs, one at a time, until none is left (the caller set `handling`).
    private func handleQueued() {
        while true {
            let step = state.withLock {
                state -> (actions: [ElectorStateMachine.Action], Duration?, Bool, ChangeFollower?, ChangeFollower?)? in
                guard state.end == nil, state.head < state.queue.count else {
                    state.handling = false
                    state.queue.removeAll(keepingCapacity: state.queue.count < 16)
                    state.head = 0
                    return nil
                }
                let input = state.queue[state.head]
                state.head += 1
                if state.head == state.queue.count {
                    state.queue.removeAll(keepingCapacity: state.queue.count < 16)
                    state.head = 0
                }
                if input.answersAcquire { state.acquireAnswered = true }
                let actions = state.machine.handle(input, now: elector.clock.now())
                let (start, stop) = updateFollowing(&state)
                return (actions, state.machine.termDeadline, state.machine.isFinished, start, stop)
            }
            guard let (actions, deadline, isFinished, start, stop) = step else { return }
            stop?.stop()
            if let start { elector.followChanges(start) }
            if let end = elector.perform(actions, deadline: deadline, in: self)
                ?? (isFinished ? .init(release: nil) : nil)
            {
                finish(end)
                return
            }
        }
    }

    /// Starts or stops following the change feed as the role changes, returning the following to start and the
    /// one to stop.
    ///
    /// A candidate follows the feed, so that a release wakes it at once; it starts with the first answer to an
    /// acquire, so its first reading is never older than a term this elector was just granted. A leader does not
    /// follow it: its renews tell it whether its term goes on, and a feed per leader would cost a read of the
    /// store per ttl (its term's expiry timer) and the memory of the following, for thousands of leaders in one
    /// process.
    private func updateFollowing(_ state: inout State) -> (start: ChangeFollower?, stop: ChangeFollower?) {
        let wanted = state.acquireAnswered && state.machine.lease == nil && !state.machine.isFinished
        if wanted, state.follower == nil {
            let follower = ChangeFollower { [weak self] input in self?.send(input) }
            state.follower = follower
            return (follower, nil)
        }
        if !wanted, let follower = state.follower {
            state.follower = nil
            return (nil, follower)
        }
        return (nil, nil)
    }

    /// Ends the campaign with `end`: later inputs are dropped, and ``run()`` returns it.
    private func finish(_ end: LeaderElector.CampaignEnd) {
        let waiter = state.withLock { state -> CheckedContinuation<LeaderElector.CampaignEnd, Never>? in
            guard state.end == nil else { return nil }
            state.end = end
            state.handling = false
            state.queue = []
            state.head = 0
            defer { state.endWaiter = nil }
            return state.endWaiter
        }
        waiter?.resume(returning: end)
    }
}
