import Baton

/// The timing of `baton run`: how long a term lasts, how early the leader gives up, and how long the command has
/// to stop.
///
/// The command must be dead before anyone else can be elected, that is before `t0 + ttl`, where `t0` is when the
/// last successful acquire or renew was sent. So the elector demotes itself at `t0 + ttl − margin − grace`
/// (its safety margin is `margin + grace`); at demotion the command's process group gets SIGTERM, and `grace`
/// later SIGKILL, which is still `margin` before the term can expire. The margin absorbs clock-rate differences
/// and scheduling delays, as in every ``LeaderElector``.
struct RunTiming: Sendable, Hashable {
    /// The term's time to live in the store.
    var ttl: Duration
    /// How long the command has between SIGTERM and SIGKILL.
    var grace: Duration
    /// The safety margin kept after SIGKILL: `max(ttl/10, 100 ms)`.
    var margin: Duration
    /// How often the leader renews.
    var renewInterval: Duration

    /// The elector's safety margin: `margin + grace`.
    var electorMargin: Duration { margin + grace }

    /// The window in which renewals must succeed: `ttl − margin − grace`.
    var window: Duration { ttl - margin - grace }

    /// The default grace for `ttl`: `max(ttl/5, 100 ms)` (2 s for a 10 s ttl).
    static func defaultGrace(ttl: Duration) -> Duration { max(ttl / 5, .milliseconds(100)) }

    /// The safety margin for `ttl`: `max(ttl/10, 100 ms)`, as ``ElectorConfiguration`` uses by default.
    static func margin(ttl: Duration) -> Duration { max(ttl / 10, .milliseconds(100)) }

    /// The default renew interval: `min(ttl/3, window/2)`, so at least two renewals are tried in every window.
    static func defaultRenewInterval(ttl: Duration, window: Duration) -> Duration { min(ttl / 3, window / 2) }

    /// The timing for the given options, with defaults that scale with the ttl.
    /// - Throws: ``BatonError`` `invalidArgument` naming the values that do not fit.
    static func resolve(ttl: Duration, grace: Duration?, renewInterval: Duration?) throws(BatonError) -> RunTiming {
        let margin = margin(ttl: ttl)
        let grace = grace ?? defaultGrace(ttl: ttl)
        let window = ttl - margin - grace
        if window <= .zero {
            throw .invalidArgument(
                "--grace \(format(grace)) does not fit in --ttl \(format(ttl)): the command must be stopped "
                    + "(SIGTERM, then SIGKILL after the grace) before the lease can pass to anyone else, so the ttl "
                    + "must exceed grace + safety margin (\(format(grace)) + \(format(margin))) plus time to renew; "
                    + "use a longer --ttl or a shorter --grace"
            )
        }
        let renew = renewInterval ?? defaultRenewInterval(ttl: ttl, window: window)
        if renew >= window {
            throw .invalidArgument(
                "--renew-interval \(format(renew)) must be shorter than ttl − margin − grace = \(format(ttl)) − "
                    + "\(format(margin)) − \(format(grace)) = \(format(window)), or the leader would stop the "
                    + "command before renewing; use a shorter --renew-interval, a longer --ttl or a shorter --grace"
            )
        }
        return RunTiming(ttl: ttl, grace: grace, margin: margin, renewInterval: renew)
    }

    /// A duration as the CLI writes it: `10s`, `250ms`, `3.333s`.
    static func format(_ duration: Duration) -> String {
        let milliseconds = duration.batonMilliseconds
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        var fraction = String(milliseconds % 1000)
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(milliseconds / 1000).\(fraction)s"
    }
}
