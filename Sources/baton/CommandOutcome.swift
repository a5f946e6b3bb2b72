import ArgumentParser
import Baton
import Foundation

/// How a subcommand ends: its exit status, and the message printed for an error.
///
/// | status | meaning |
/// |---|---|
/// | 0 | success: won, completed, a leader exists |
/// | 1 | the store said no: lost the round, not the winner, already completed by another, no leader |
/// | 2 | invalid argument: a malformed name, duration or store URL, or a store this build lacks |
/// | 3 | the store failed, timed out or refused the credentials; the outcome is unknown and a retry is safe |
/// | 74 | `baton campaign`, `baton watch`: standard output was closed (its reader went away); a campaign released its term first |
/// | 75 | `baton run`: leadership was lost while the command ran, and the command was stopped |
/// | 126 | `baton run`: the command could not be executed |
/// | 127 | `baton run`: the command was not found |
///
/// `baton run` otherwise exits with the command's own status (128 + N when signal N ended it), or 128 + N when
/// signal N stopped `baton` before the command started. ArgumentParser's own usage errors (a missing argument,
/// an unknown option) exit with its status, 64.
enum CommandOutcome {
    static let success: Int32 = 0
    static let refused: Int32 = 1
    static let invalidArgument: Int32 = 2
    static let storeFailure: Int32 = 3
    /// `baton campaign`, `baton watch`: standard output was closed (EX_IOERR).
    static let outputClosed: Int32 = 74
    /// `baton run`: leadership was lost while the command ran (EX_TEMPFAIL: campaigning again later may succeed).
    static let leadershipLost: Int32 = 75

    /// Runs a subcommand's work: returns normally for status 0, else throws `ExitCode` after printing any error
    /// as `baton: <message>` on standard error.
    static func run(_ body: () async throws -> Int32) async throws {
        let status: Int32
        do {
            status = try await body()
        } catch {
            printError(message(for: error))
            status = self.status(for: error)
        }
        if status != success { throw ExitCode(status) }
    }

    /// The exit status for an error.
    static func status(for error: any Error) -> Int32 {
        guard let error = error as? BatonError else { return storeFailure }
        switch error.code {
        case .invalidArgument: return invalidArgument
        case .held, .lost, .notWinner, .alreadyCompleted: return refused
        default: return storeFailure
        }
    }

    /// The message printed for an error: a ``BatonError``'s message without its code, which never contains
    /// credentials.
    static func message(for error: any Error) -> String {
        guard let error = error as? BatonError else { return String(describing: error) }
        switch error.code {
        case .storeUnavailable: return "the store is unavailable: \(error.message)"
        case .timeout: return "the store timed out: \(error.message)"
        case .unauthorized: return "the store refused the credentials: \(error.message)"
        default: return error.message
        }
    }

    /// Prints `baton: <message>` on standard error.
    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("baton: \(message)\n".utf8))
    }
}
