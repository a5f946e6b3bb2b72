@_spi(BatonStoreKit) import Baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The default identity of a candidate: this host's name, so that a cron job retried on the same host is the
/// same candidate and wins its round again.
enum Candidate {
    /// `explicit` if given, else the host name.
    /// - Throws: ``BatonError`` `invalidArgument` if neither is available or the result is not a valid name.
    static func resolve(_ explicit: String?) throws(BatonError) -> String {
        guard let candidate = explicit ?? hostName() else {
            throw .invalidArgument("cannot read this host's name; name the candidate with --candidate ID")
        }
        try BatonValidation.name(candidate, "candidate")
        return candidate
    }

    /// The host name as `gethostname` reports it, or nil.
    static func hostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let name = String(decoding: bytes, as: UTF8.self)
        return name.isEmpty ? nil : name
    }
}

/// Parses the value of a duration option, naming the option in the error.
func parseDurationOption(_ text: String, option: String) throws(BatonError) -> Duration {
    do {
        let duration = try parseBatonDuration(text)
        try BatonValidation.duration(duration, option)
        return duration
    } catch {
        throw .invalidArgument(error.message.hasPrefix(option) ? error.message : "\(option): \(error.message)")
    }
}
