#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The clocks and the boot identity of this host, as every process on it sees them.
///
/// Lease and presence expiry is judged by `CLOCK_BOOTTIME`: it is monotonic, shared by all processes of the
/// host, and keeps counting while the machine is suspended (so a suspended host does not extend a lease). It
/// restarts at each boot, which is why every row that carries a boot-clock time also carries the boot id: a
/// row written under another boot id is expired, whatever its time says.
enum HostClock {
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
