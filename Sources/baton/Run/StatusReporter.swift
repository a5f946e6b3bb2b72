import Baton
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The lines `baton run` prints on standard error: status lines (who holds the key while it waits, since when;
/// retries), silenced by `--quiet`, and errors, always printed. Standard output belongs to the command. It prints
/// what ``RunStateMachine`` reports and decides nothing.
struct StatusReporter: Sendable {
    /// The key campaigned for.
    var key: String
    /// This candidate's identity.
    var holder: String
    /// The name the command is given in messages.
    var command: String
    /// Whether status lines are silenced (errors are always printed).
    var quiet: Bool

    /// Prints `report`.
    func print(_ report: RunStateMachine.Report) {
        switch report {
        case .waiting(let holder, let token, let since):
            status("waiting: \(key) is held by \(holder) (token \(token)) since \(since)")
        case .storeError(let message):
            status("\(message); retrying")
        case .campaigningAgain:
            status("campaigning again for \(key) (--retry)")
        case .termOverBeforeStart(let token):
            CommandOutcome.printError(
                "lost leadership of \(key) (token \(token)) before \(command) could start: the term ended or its "
                    + "deadline passed first; \(command) was not started")
        case .cannotRun(let reason):
            CommandOutcome.printError("cannot run \(command): \(reason)")
        }
    }

    /// How the command of a lost term ended, for ``lost(token:reason:command:grace:)``.
    enum StoppedCommand {
        /// Its keeper refused the launch after the term's deadline: it never ran.
        case refused
        /// It was stopped; `killed`: with SIGKILL; `byKeeper`: by its keeper's watchdog.
        case stopped(exit: ChildProcess.Exit, killed: Bool, byKeeper: Bool)
    }

    /// Says why the term of `token` (if known) was lost for `reason` and how its command was stopped.
    func lost(token: FencingToken?, reason: DemotionReason?, command stopped: StoppedCommand?, grace: Duration) {
        var message = "lost leadership of \(key)"
        if let token { message += " (token \(token))" }
        message += ": \(Self.explain(reason))"
        switch stopped {
        case .refused:
            message += "; \(command) was not started (its keeper refused the launch after the term's deadline)"
        case .stopped(let exit, let killed, let byKeeper):
            message +=
                killed
                ? "; \(command) was killed with SIGKILL after the \(RunTiming.format(grace)) grace"
                : "; \(command) was stopped with SIGTERM (exit status \(exit.code))"
            if byKeeper { message += " by its keeper at the term's deadline" }
        case nil:
            break
        }
        CommandOutcome.printError(message)
    }

    /// Prints `baton: <line>` on standard error unless quiet.
    func status(_ line: String) {
        if !quiet { CommandOutcome.printError(line) }
    }

    /// Why a term ended, for messages.
    static func explain(_ reason: DemotionReason?) -> String {
        switch reason {
        case .some(.lost): "the store refused to renew the lease (it expired or passed to another holder)"
        case .some(.deadlineReached): "no renewal succeeded before the local deadline (is the store reachable?)"
        case .some(.resigned): "it resigned"
        default: "leadership ended"
        }
    }

    /// The local time of day, `14:03:12`.
    static func clockTime() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
