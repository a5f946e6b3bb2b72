/// A monotonic clock reduced to what Baton needs: the time since a fixed origin, and sleeping until a time.
///
/// It wraps any `Clock` whose durations are `Duration` (`ContinuousClock` in production, `ManualClock` from
/// `BatonTestKit` in tests), so the types that take a clock need not be generic over it.
@_spi(BatonStoreKit) public struct BatonClock: Sendable {
    private let nowFunction: @Sendable () -> Duration
    private let sleepFunction: @Sendable (Duration) async throws -> Void
    /// Whether this is the host's continuous clock (no test controls it).
    let isHostClock: Bool
    /// The instant of the origin, when this is the host's continuous clock.
    let hostOrigin: ContinuousClock.Instant?

    /// Wraps `clock`; times are measured from the moment of wrapping.
    public init<C: Clock>(_ clock: C) where C.Duration == Duration {
        self.isHostClock = clock is ContinuousClock
        let origin = clock.now
        self.hostOrigin = origin as? ContinuousClock.Instant
        self.nowFunction = { origin.duration(to: clock.now) }
        self.sleepFunction = { deadline in
            try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil)
        }
    }

    /// The continuous clock of this host (it keeps counting while the machine sleeps).
    public static var continuous: BatonClock { BatonClock(ContinuousClock()) }

    /// The time elapsed since the origin.
    public func now() -> Duration { nowFunction() }

    /// Sleeps until `deadline` (a time since the origin). Throws `CancellationError` if the task is cancelled.
    public func sleep(until deadline: Duration) async throws { try await sleepFunction(deadline) }

    /// Sleeps for `duration`. Throws `CancellationError` if the task is cancelled.
    public func sleep(for duration: Duration) async throws { try await sleepFunction(now() + duration) }
}
