import Foundation
import Synchronization

/// CPU time used by this process so far (user + system), from getrusage.
func processCPUTime() -> Duration {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func duration(_ time: timeval) -> Duration { .seconds(time.tv_sec) + .microseconds(time.tv_usec) }
    return duration(usage.ru_utime) + duration(usage.ru_stime)
}

/// This process's resident memory in bytes now (VmRSS) and at its peak (VmHWM), from /proc/self/status.
func residentMemory() -> (current: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func kibibytes(_ field: String) -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
    }
    return (kibibytes("VmRSS") * 1024, kibibytes("VmHWM") * 1024)
}

/// A counter shared by tasks.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)
    /// Adds one and returns the value before.
    func increment() -> Int { atomic.add(1, ordering: .relaxed).oldValue }
    var value: Int { atomic.load(ordering: .relaxed) }
}
