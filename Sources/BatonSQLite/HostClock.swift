@_spi(BatonStoreKit) import Baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The clock every process of this host reads alike, by which ``SQLiteLeaseStore`` judges expiry by default.
///
/// It reads `CLOCK_BOOTTIME`: monotonic, shared by all processes of the host, and counting on while the machine
/// is suspended (so a suspended host does not extend a lease). It restarts at each boot, which is why its
/// ``epoch()`` is the boot id: a row written under another boot has expired, whatever its time says.
public struct HostClock: SQLiteExpiryClock {
    /// A reading of `CLOCK_BOOTTIME`: the time since this host booted.
    public struct Instant: InstantProtocol, Sendable {
        /// Nanoseconds since boot.
        public var nanoseconds: Int64

        /// The instant `nanoseconds` after boot.
        public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

        /// This instant moved by `duration`.
        public func advanced(by duration: Duration) -> Instant {
            Instant(nanoseconds: nanoseconds + duration.batonNanoseconds)
        }

        /// The time from this instant to `other`.
        public func duration(to other: Instant) -> Duration { .nanoseconds(other.nanoseconds - nanoseconds) }

        /// Whether `lhs` comes before `rhs`.
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    }

    /// The host's clock.
    public init() {}

    /// Now, by `CLOCK_BOOTTIME`.
    public var now: Instant { Instant(nanoseconds: Self.bootNanoseconds()) }

    /// One nanosecond.
    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Sleeps until `deadline` by this clock. Throws `CancellationError` if the task is cancelled.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        // The continuous clock may count differently across a suspension; sleep again until this one agrees.
        while now < deadline {
            try await Task.sleep(for: now.duration(to: deadline), tolerance: tolerance, clock: .continuous)
        }
    }

    /// The boot id, or nil if it cannot be read.
    public func epoch() -> String? { Self.bootID() }

    /// Nanoseconds since boot.
    public func nanoseconds(at instant: Instant) -> Int64 { instant.nanoseconds }

    // MARK: Readings

    /// Nanoseconds of `CLOCK_BOOTTIME` (time since this host booted, including suspension).
    static func bootNanoseconds() -> Int64 {
        nanoseconds(of: CLOCK_BOOTTIME)
    }

    /// Milliseconds of the wall clock since the Unix epoch. Used only for round retention (days), never for
    /// deciding who leads.
    static func wallMilliseconds() -> Int64 {
        nanoseconds(of: CLOCK_REALTIME) / 1_000_000
    }

    private static func nanoseconds(of clock: clockid_t) -> Int64 {
        var time = timespec()
        // clock_gettime cannot fail for these clocks on Linux (both exist since 2.6.39).
        let result = clock_gettime(clock, &time)
        precondition(result == 0, "clock_gettime(\(clock)) failed with errno \(errno)")
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Where Linux publishes the id of the current boot.
    static let bootIDPath = "/proc/sys/kernel/random/boot_id"

    /// The id of the current boot (a UUID that changes at every boot), or nil if it cannot be read.
    static func bootID() -> String? {
        let fd = open(bootIDPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
            .filter { !$0.isWhitespace }
        return text.isEmpty ? nil : text
    }
}
