/// A clock by which ``SQLiteLeaseStore`` judges the expiry of leases and presence: every process sharing one
/// database file must read the same time from it, since they compare the times that others wrote.
///
/// ``HostClock`` (the default) is that clock for the processes of one host. Another clock serves tests: one
/// driven by hand (such as a wrapper of `BatonTestKit`'s `ManualClock`) makes expiry deterministic, as long as
/// every store instance on the file reads it.
public protocol SQLiteExpiryClock: Clock, Sendable where Duration == Swift.Duration {
    /// Names the span in which readings of this clock are comparable (for ``HostClock``, the boot id). A row
    /// written under another epoch has expired, whatever its time says. Nil if it cannot be known; the store
    /// then refuses to run.
    func epoch() -> String?

    /// `instant` as nanoseconds since the origin of the epoch: the number the store writes to the file.
    func nanoseconds(at instant: Instant) -> Int64
}
