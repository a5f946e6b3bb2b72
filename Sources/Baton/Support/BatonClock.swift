import Dispatch
import Synchronization

/// A monotonic clock reduced to what Baton needs: the time since a fixed origin, sleeping until a time, and
/// running an action at a time.
///
/// It wraps any `Clock` whose durations are `Duration` (`ContinuousClock` in production, `ManualClock` from
/// `BatonTestKit` in tests), so the types that take a clock need not be generic over it.
@_spi(BatonStoreKit) public struct BatonClock: Sendable {
    private let nowFunction: @Sendable () -> Duration
    private let sleepFunction: @Sendable (Duration) async throws -> Void
    /// Schedules an action on the host's timers; nil for clocks that only sleep (they use a sleeping task).
    private let hostTimer: (@Sendable (Duration, @escaping @Sendable () -> Void) -> ScheduledAction)?

    /// Wraps `clock`; times are measured from the moment of wrapping.
    public init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let origin = clock.now
        self.nowFunction = { origin.duration(to: clock.now) }
        self.sleepFunction = { deadline in
            try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil)
        }
        self.hostTimer = nil
    }

    private init() {
        let clock = ContinuousClock()
        let origin = clock.now
        self.nowFunction = { origin.duration(to: clock.now) }
        self.sleepFunction = { deadline in
            try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil)
        }
        self.hostTimer = { delay, action in
            // The timer cannot be taken back from the system's queue: cancelling drops the action (and what it
            // holds), and the timer then finds nothing to run.
            let pending = PendingAction(action)
            let nanoseconds = Int(clamping: max(0, delay.batonNanoseconds))
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { pending.take()?() }
            return ScheduledAction { _ = pending.take() }
        }
    }

    /// The continuous clock of this host (it keeps counting while the machine sleeps).
    public static var continuous: BatonClock { BatonClock() }

    /// The time elapsed since the origin.
    public func now() -> Duration { nowFunction() }

    /// Sleeps until `deadline` (a time since the origin). Throws `CancellationError` if the task is cancelled.
    public func sleep(until deadline: Duration) async throws { try await sleepFunction(deadline) }

    /// Sleeps for `duration`. Throws `CancellationError` if the task is cancelled.
    public func sleep(for duration: Duration) async throws { try await sleepFunction(now() + duration) }

    /// Runs `action` once the clock reaches `deadline` (a time since the origin), unless the returned handle is
    /// cancelled first.
    ///
    /// On the host's continuous clock this is one of the system's timers, with no task waiting for it (a
    /// request's deadline costs no thread wake-up when the request ends first); on any other clock it is a task
    /// sleeping on that clock, so a test's manual clock sees it as a sleeper.
    public func schedule(at deadline: Duration, _ action: @escaping @Sendable () -> Void) -> ScheduledAction {
        if let hostTimer { return hostTimer(deadline - now(), action) }
        let sleeper = Task {
            try await sleep(until: deadline)
            action()
        }
        return ScheduledAction { sleeper.cancel() }
    }

    /// An action ``BatonClock/schedule(at:_:)`` will run; cancelling it before its time means it never runs.
    public struct ScheduledAction: Sendable {
        private let cancelFunction: @Sendable () -> Void

        init(cancel: @escaping @Sendable () -> Void) { self.cancelFunction = cancel }

        /// Makes sure the action does not run, if it has not started yet.
        public func cancel() { cancelFunction() }
    }
}

/// An action that runs at most once: whoever takes it first (the timer, or a cancellation) gets it.
private final class PendingAction: Sendable {
    private let action: Mutex<(@Sendable () -> Void)?>

    init(_ action: @escaping @Sendable () -> Void) { self.action = Mutex(action) }

    func take() -> (@Sendable () -> Void)? { action.withLock { $0.take() } }
}
