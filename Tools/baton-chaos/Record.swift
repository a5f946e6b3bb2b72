import ArgumentParser
import BatonChaos
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension BatonChaosCommand {
    /// The work `baton run` starts: records `start`, a `tick` every interval, and `end` on SIGTERM.
    struct Record: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record start/tick/end with $BATON_TOKEN until SIGTERM (run it under `baton run`).")

        @Option(help: ArgumentHelp("The directory of the work logs.", valueName: "dir"))
        var log: String

        @Option(help: ArgumentHelp("Milliseconds between ticks.", valueName: "ms"))
        var tick: Int = 50

        func run() throws {
            let environment = ProcessInfo.processInfo.environment
            guard let token = environment["BATON_TOKEN"].flatMap({ Int64($0) }),
                let holder = environment["BATON_HOLDER"]
            else {
                throw ValidationError("BATON_TOKEN and BATON_HOLDER must be set: run this under `baton run`")
            }
            // SIGTERM is blocked and taken synchronously by sigtimedwait, which is also the pause between ticks.
            var stop = sigset_t()
            sigemptyset(&stop)
            sigaddset(&stop, SIGTERM)
            sigprocmask(SIG_BLOCK, &stop, nil)
            let log = try WorkLog(directory: log, holder: holder, campaigner: Self.campaigner())
            log.append(.start, token: token)
            var interval = timespec(tv_sec: tick / 1000, tv_nsec: (tick % 1000) * 1_000_000)
            while true {
                if sigtimedwait(&stop, nil, &interval) == SIGTERM { break }
                log.append(.tick, token: token)
            }
            log.append(.end, token: token)
        }

        /// The `baton run` process that campaigns for this command: the parent of this process's parent, the keeper
        /// `baton run` forks to lead the command's process group.
        static func campaigner() -> Int32 {
            let keeper = getppid()
            guard let stat = try? String(contentsOfFile: "/proc/\(keeper)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return keeper }
            // After the command name in parentheses: state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 ? Int32(fields[1]) ?? keeper : keeper
        }
    }
}
