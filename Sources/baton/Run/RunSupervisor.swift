import Baton
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What `baton run` is doing, shared by the leadership loop, the signal handler and the event reporter, so that
/// a stop signal is handled the right way whenever it arrives:
///
/// - while waiting for leadership: the elector resigns (releasing a lease an acquire in flight may still grant);
/// - while the command runs: the signal is forwarded to its process group, SIGKILL follows after the grace, and
///   the lease is released only once the command is gone — never before, or a successor could start while the
///   command still runs.
///
/// A signal that arrives before the elector's campaign has started finds nothing to resign; the next event of
/// the campaign (there is always one: elected, a leader seen, or a store error) repeats the resign.
final class RunSupervisor: Sendable {
    private enum Phase {
        case waiting
        case starting
        case running(ChildProcess)
    }

    private struct State {
        var phase = Phase.waiting
        var stopSignal: Int32?
        var lastTerm: (token: FencingToken, child: ChildProcess?)?
        var endedCommand: ChildProcess.Exit?
        var campaignSeen = false
        var campaignWaiters: [CheckedContinuation<Void, Never>] = []
        var demotion: (token: FencingToken, reason: DemotionReason)?
        var demotionWaiters: [Int: (token: FencingToken, continuation: CheckedContinuation<DemotionReason?, Never>)] =
            [:]
        var nextWaiter = 0
    }

    /// How long the command has between the first signal and SIGKILL.
    let grace: Duration
    private let resignOnLoss: Bool
    private let resign: @Sendable () -> Void
    private let state = Mutex(State())

    /// - Parameters:
    ///   - resignOnLoss: leave the election as soon as the store refuses a renewal (when `baton` is to exit after
    ///     a loss), so that the elector does not take the key again while the command is being stopped.
    ///   - resign: steps the elector down (nothing in round mode).
    init(grace: Duration, resignOnLoss: Bool = false, resign: @escaping @Sendable () -> Void = {}) {
        self.grace = grace
        self.resignOnLoss = resignOnLoss
        self.resign = resign
    }

    /// The first stop signal received, if any.
    var stopSignal: Int32? { state.withLock { $0.stopSignal } }

    /// `baton` received `signal` (SIGTERM, SIGINT or SIGHUP).
    func received(_ signal: Int32) {
        let (child, waiters) = state.withLock { state -> (ChildProcess?, [CheckedContinuation<Void, Never>]) in
            if state.stopSignal == nil { state.stopSignal = signal }
            defer { state.campaignWaiters = [] }
            if case .running(let child) = state.phase { return (child, state.campaignWaiters) }
            return (nil, state.campaignWaiters)
        }
        for waiter in waiters { waiter.resume() }
        if let child {
            child.stop(signal, grace: grace)
        } else {
            resignIfStopping()
        }
    }

    /// The elector reported something, so its campaign runs: wake ``waitForCampaign()`` and repeat a resign that
    /// came too early.
    func campaignProgressed() {
        let waiters = state.withLock { state in
            state.campaignSeen = true
            defer { state.campaignWaiters = [] }
            return state.campaignWaiters
        }
        for waiter in waiters { waiter.resume() }
        resignIfStopping()
    }

    /// Waits until the elector reported its first event (so its `run()` owns the campaign) or a stop signal came.
    func waitForCampaign() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.campaignSeen || state.stopSignal != nil { return true }
                state.campaignWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func resignIfStopping() {
        let resign = state.withLock { state -> Bool in
            guard state.stopSignal != nil, case .waiting = state.phase else { return false }
            return true
        }
        if resign { self.resign() }
    }

    /// The latest term led, and the command started in it, if any.
    var lastTerm: (token: FencingToken, child: ChildProcess?)? { state.withLock { $0.lastTerm } }

    /// A term of leadership began (before ``beginStarting()``).
    func elected(_ lease: Lease) {
        state.withLock { $0.lastTerm = (lease.token, nil) }
    }

    /// Leadership began: returns whether to start the command (false once a stop signal arrived).
    func beginStarting() -> Bool {
        state.withLock { state in
            guard state.stopSignal == nil, case .waiting = state.phase else { return false }
            state.phase = .starting
            return true
        }
    }

    /// The command started: a stop signal that arrived while it was being started is forwarded now.
    func started(_ child: ChildProcess) {
        let signal = state.withLock { state -> Int32? in
            state.phase = .running(child)
            if state.lastTerm != nil { state.lastTerm?.child = child }
            return state.stopSignal
        }
        if let signal { child.stop(signal, grace: grace) }
    }

    /// The command is gone (or could not be started).
    func finished() {
        state.withLock { $0.phase = .waiting }
    }

    /// The command ended by itself or on a stop signal (not because leadership ended), and the run ends with it.
    func ended(_ exit: ChildProcess.Exit) {
        state.withLock { $0.endedCommand = exit }
    }

    /// How the command ended, if it ended by itself or on a stop signal (see ``ended(_:)``).
    var endedCommand: ChildProcess.Exit? { state.withLock { $0.endedCommand } }

    // MARK: Demotion reasons

    /// The elector demoted itself from the term of `lease` for `reason`.
    ///
    /// With `resignOnLoss`, a `lost` term makes the elector resign at once, although the command may still be
    /// stopping: the store said the term is over, so anything the elector could hold now is a new term that no
    /// command uses. Never after `deadlineReached`: then the elector's next acquire may renew the old term, which
    /// must stay in the store until the command is gone.
    func demoted(_ lease: Lease, _ reason: DemotionReason) {
        if resignOnLoss && reason == .lost { resign() }
        let waiters = state.withLock { state in
            state.demotion = (lease.token, reason)
            let waiting = state.demotionWaiters.filter { $0.value.token == lease.token }
            for id in waiting.keys { state.demotionWaiters[id] = nil }
            return waiting.values.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    /// Why the term of `token` ended, waiting at most `timeout` for the event reporter to have seen it.
    func demotionReason(of token: FencingToken, within timeout: Duration) async -> DemotionReason? {
        await withCheckedContinuation { continuation in
            let (known, id) = state.withLock { state -> (DemotionReason??, Int) in
                if let demotion = state.demotion, demotion.token == token { return (.some(demotion.reason), 0) }
                state.nextWaiter += 1
                state.demotionWaiters[state.nextWaiter] = (token, continuation)
                return (nil, state.nextWaiter)
            }
            if let known {
                continuation.resume(returning: known)
                return
            }
            let milliseconds = Int(max(0, timeout.batonMilliseconds))
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [self] in
                state.withLock { $0.demotionWaiters.removeValue(forKey: id) }?.continuation.resume(returning: nil)
            }
        }
    }
}
