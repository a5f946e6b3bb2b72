#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One line of a chaos log: what a leader's work did, or what the fault injector did, at a time of the host's
/// monotonic clock (`CLOCK_MONOTONIC`, shared by every process on the machine).
///
/// Work records (written by the work of a leader, one file per process):
///
///     <monotonic ns> start|tick|end <token> <holder> <pid> <campaigner pid>
///
/// `pid` is the process that writes (the command started by `baton run`, or the library worker itself);
/// `campaigner pid` is the process that campaigns (`baton run`, or the library worker itself). A term is one
/// fencing token; it belongs to one campaigning process.
///
/// Fault records (written by the orchestrator of `scripts/chaos`, one file):
///
///     <monotonic ns> fault <kind> <target campaigner pid or -> <target token or ->
///     <monotonic ns> pause <campaigner pid>      (SIGSTOP sent to the campaigner's process groups)
///     <monotonic ns> resume <campaigner pid>     (SIGCONT sent)
///     <monotonic ns> finish                      (the run ended; nothing was killed yet)
public enum ChaosRecord: Sendable, Hashable {
    /// What the work of a leader recorded.
    public enum WorkKind: String, Sendable, Hashable {
        case start
        case tick
        case end
    }

    /// A record of a leader's work.
    public struct Work: Sendable, Hashable {
        public var time: Int64
        public var kind: WorkKind
        public var token: Int64
        public var holder: String
        public var pid: Int32
        public var campaigner: Int32

        public init(time: Int64, kind: WorkKind, token: Int64, holder: String, pid: Int32, campaigner: Int32) {
            self.time = time
            self.kind = kind
            self.token = token
            self.holder = holder
            self.pid = pid
            self.campaigner = campaigner
        }

        /// The record as one line, without the newline.
        public var line: String { "\(time) \(kind.rawValue) \(token) \(holder) \(pid) \(campaigner)" }
    }

    /// A fault the orchestrator injected.
    public struct Fault: Sendable, Hashable {
        public var time: Int64
        /// `kill`, `term`, `stop`, `blackhole`, `cut`, `delay`, `restart`, `wipe`, ...
        public var kind: String
        /// The campaigning process the fault was aimed at, if it was aimed at a leader.
        public var campaigner: Int32?
        /// The token of the term the target led when the fault was injected, if known.
        public var token: Int64?

        public init(time: Int64, kind: String, campaigner: Int32? = nil, token: Int64? = nil) {
            self.time = time
            self.kind = kind
            self.campaigner = campaigner
            self.token = token
        }
    }

    case work(Work)
    case fault(Fault)
    case pause(time: Int64, campaigner: Int32)
    case resume(time: Int64, campaigner: Int32)
    case finish(time: Int64)

    /// Parses one line.
    /// - Throws: ``ChaosRecord/ParseError`` naming what is wrong with the line.
    public init(line: Substring) throws(ParseError) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, let time = Int64(fields[0]) else {
            throw ParseError(line: String(line), reason: "expected '<monotonic ns> <kind> ...'")
        }
        func integer<T: FixedWidthInteger>(_ index: Int, _ name: String) throws(ParseError) -> T {
            guard index < fields.count, let value = T(fields[index]) else {
                throw ParseError(line: String(line), reason: "field \(index + 1) (\(name)) is not an integer")
            }
            return value
        }
        func optional<T: FixedWidthInteger>(_ index: Int, _ name: String) throws(ParseError) -> T? {
            guard index < fields.count, fields[index] != "-" else { return nil }
            return try integer(index, name)
        }
        switch fields[1] {
        case "start", "tick", "end":
            guard fields.count == 6 else {
                throw ParseError(line: String(line), reason: "a work record has 6 fields, this one \(fields.count)")
            }
            self = .work(
                Work(
                    time: time,
                    kind: WorkKind(rawValue: String(fields[1]))!,
                    token: try integer(2, "token"),
                    holder: String(fields[3]),
                    pid: try integer(4, "pid"),
                    campaigner: try integer(5, "campaigner pid")
                ))
        case "fault":
            guard fields.count >= 3 else { throw ParseError(line: String(line), reason: "a fault has no kind") }
            self = .fault(
                Fault(
                    time: time, kind: String(fields[2]), campaigner: try optional(3, "campaigner pid"),
                    token: try optional(4, "token")))
        case "pause":
            self = .pause(time: time, campaigner: try integer(2, "campaigner pid"))
        case "resume":
            self = .resume(time: time, campaigner: try integer(2, "campaigner pid"))
        case "finish":
            self = .finish(time: time)
        default:
            throw ParseError(line: String(line), reason: "unknown record kind '\(fields[1])'")
        }
    }

    /// A line that is not a chaos record.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var line: String
        public var reason: String
        public var description: String { "not a chaos record (\(reason)): \(line)" }
    }

    /// The host's monotonic clock in nanoseconds (`CLOCK_MONOTONIC`: one clock for every process on the host).
    public static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
