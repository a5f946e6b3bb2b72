import Synchronization

/// A clock whose time moves only when a test moves it, so that timeouts, ttls and expiries happen exactly when
/// the test says.
///
/// Time starts at ``Instant/zero`` (or the instant given to ``init(now:)``) and stands still until
/// ``advance(by:)`` or ``advance(to:)``. A task that sleeps until a deadline in the future is suspended until the
/// clock is advanced to or past it; a deadline that is already due returns at once. Sleeping is
/// cancellation-aware: cancelling a sleeping task removes it and makes it throw `CancellationError` at once.
///
/// Tests that need to know that a task has gone to sleep before they advance the clock use
/// ``waitForSleepers(atLeast:)``, which suspends (without polling) until enough tasks sleep.
///
/// ```swift
/// let clock = ManualClock()
/// let store = MemoryLeaseStore(clock: clock)
/// _ = try await store.acquire(key: "k", holder: "a", ttl: .seconds(10))
/// clock.advance(by: .seconds(11))          // the term has expired
/// ```
///
/// All members are safe to call from any task or thread.
public final class ManualClock: Clock, Sendable {
    /// A point in the clock's time: an offset from the clock's zero.
    public struct Instant: InstantProtocol, CustomStringConvertible {
        /// The time since zero.
        public var offset: Duration

        /// The instant `offset` after zero.
        public init(offset: Duration) {
            self.offset = offset
        }

        /// The clock's origin.
        public static let zero = Instant(offset: .zero)

        /// The instant `duration` later (earlier, if negative).
        public func advanced(by duration: Duration) -> Instant {
            Instant(offset: offset + duration)
        }

        /// The time from this instant to `other` (negative if `other` is earlier).
        public func duration(to other: Instant) -> Duration {
            other.offset - offset
        }

        /// Whether `lhs` is earlier than `rhs`.
        public static func < (lhs: Instant, rhs: Instant) -> Bool {
            lhs.offset < rhs.offset
        }

        /// The instant `duration` after `instant`.
        public static func + (instant: Instant, duration: Duration) -> Instant {
            instant.advanced(by: duration)
        }

        /// The instant `duration` before `instant`.
        public static func - (instant: Instant, duration: Duration) -> Instant {
            instant.advanced(by: .zero - duration)
        }

        /// The time from `rhs` to `lhs` (negative if `lhs` is earlier).
        public static func - (lhs: Instant, rhs: Instant) -> Duration {
            rhs.duration(to: lhs)
        }

        /// Moves `instant` forward by `duration`.
        public static func += (instant: inout Instant, duration: Duration) {
            instant = instant + duration
        }

        /// Moves `instant` back by `duration`.
        public static func -= (instant: inout Instant, duration: Duration) {
            instant = instant - duration
        }

        /// The offset from zero, for messages.
        public var description: String { "ManualClock.Instant(\(offset))" }
    }

    private struct State {
        var now: Instant
        /// Sleeping tasks, tagged with their deadlines.
        var sleepers = Parking<Instant>()
        /// Tasks in ``waitForSleepers(atLeast:)``, tagged with the number of sleepers they wait for.
        var watchers = Parking<Int>()

        /// Removes and returns the watchers satisfied by the current number of sleepers.
        mutating func takeSatisfiedWatchers() -> [CheckedContinuation<Void, any Error>] {
            let sleeping = sleepers.count
            return watchers.take { $0 <= sleeping }.map(\.entry.continuation)
        }
    }

    private let state: Mutex<State>

    /// A clock that reads `now` until it is advanced.
    public init(now: Instant = .zero) {
        state = Mutex(State(now: now))
    }

    /// The current time. It changes only through ``advance(by:)`` and ``advance(to:)``.
    public var now: Instant {
        state.withLock { $0.now }
    }

    /// One nanosecond: the clock can be advanced by any amount, but sleepers are scheduled no finer than this.
    public var minimumResolution: Duration {
        .nanoseconds(1)
    }

    /// The number of tasks sleeping now (suspended in ``sleep(until:tolerance:)`` with a deadline not yet due).
    public var sleeperCount: Int {
        state.withLock { $0.sleepers.count }
    }

    /// The deadlines of the sleeping tasks, earliest first.
    public var sleeperDeadlines: [Instant] {
        state.withLock { state in state.sleepers.entries.values.map(\.tag).sorted() }
    }

    /// The earliest deadline of the sleeping tasks, or nil if none sleeps.
    public var nextDeadline: Instant? {
        state.withLock { state in state.sleepers.entries.values.map(\.tag).min() }
    }

    /// Suspends until the clock reaches `deadline`; returns at once if `deadline` is not after ``now``.
    ///
    /// - Parameter tolerance: ignored; sleepers wake exactly when the clock is advanced past their deadline.
    /// - Throws: `CancellationError` if the task is cancelled before or while it sleeps (the sleeper is then
    ///   removed at once and no longer counted).
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        try Task.checkCancellation()
        let id: UInt64? = state.withLock { state in
            deadline <= state.now ? nil : state.sleepers.reserve()
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Verdict { case parked, due, cancelled }
                let (verdict, watchers) = state.withLock { state -> (Verdict, [CheckedContinuation<Void, any Error>]) in
                    if deadline <= state.now {
                        // The clock passed the deadline between reserving and parking.
                        return (state.sleepers.unreserve(id) ? .due : .cancelled, [])
                    }
                    guard state.sleepers.park(id, tag: deadline, continuation: continuation) else {
                        return (.cancelled, [])
                    }
                    return (.parked, state.takeSatisfiedWatchers())
                }
                switch verdict {
                case .parked: break
                case .due: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
                for watcher in watchers { watcher.resume() }
            }
        } onCancel: {
            state.withLock { $0.sleepers.cancel(id) }?.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward by `duration` and wakes every sleeper whose deadline is now due, earliest
    /// deadline first (sleepers with equal deadlines in the order they went to sleep).
    ///
    /// A negative duration leaves the clock unchanged. The woken tasks run asynchronously: when this returns
    /// they have been resumed but not necessarily run.
    /// - Returns: the number of sleepers woken.
    @discardableResult
    public func advance(by duration: Duration) -> Int {
        advance { now in now.advanced(by: max(duration, .zero)) }
    }

    /// Moves the clock to `instant` and wakes every sleeper whose deadline is now due, earliest deadline first.
    ///
    /// An instant before ``now`` leaves the clock unchanged (time never goes back). The woken tasks run
    /// asynchronously: when this returns they have been resumed but not necessarily run.
    /// - Returns: the number of sleepers woken.
    @discardableResult
    public func advance(to instant: Instant) -> Int {
        advance { now in max(now, instant) }
    }

    /// Suspends until at least `count` tasks are sleeping on this clock; returns at once if they already are.
    ///
    /// It is woken by sleepers registering, never by polling, so a test can start work in other tasks, wait
    /// for them to reach their sleeps and then advance the clock past their deadlines without a race. If the
    /// waiting task is cancelled it returns early; check `Task.isCancelled` if that matters.
    public func waitForSleepers(atLeast count: Int) async {
        let id: UInt64? = state.withLock { state in
            state.sleepers.count >= count ? nil : state.watchers.reserve()
        }
        guard let id else { return }
        try? await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.sleepers.count >= count {
                        _ = state.watchers.unreserve(id)
                        return true
                    }
                    return !state.watchers.park(id, tag: count, continuation: continuation)
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.watchers.cancel(id) }?.resume(throwing: CancellationError())
        }
    }

    private func advance(_ target: (Instant) -> Instant) -> Int {
        let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.now = target(state.now)
            let now = state.now
            return state.sleepers.take { $0 <= now }
                .sorted { ($0.entry.tag, $0.id) < ($1.entry.tag, $1.id) }
                .map(\.entry.continuation)
        }
        for continuation in due { continuation.resume() }
        return due.count
    }
}
