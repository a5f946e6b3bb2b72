import Baton
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The status lines `baton run` prints on standard error while it waits for leadership (who holds the key,
/// since when), silenced by `--quiet`. Standard output belongs to the command.
struct StatusReporter: Sendable {
    /// The key campaigned for.
    var key: String
    /// This candidate's identity.
    var holder: String
    /// Whether status lines are silenced (errors are always printed).
    var quiet: Bool

    /// Reports the events of one elector until the stream ends or the task is cancelled, telling `supervisor`
    /// about each one.
    func follow(_ events: AsyncStream<ElectorEvent>, supervisor: RunSupervisor) async {
        var seen: (holder: String, token: FencingToken, since: String)?
        var failing = false
        for await event in events {
            switch event {
            case .leaderChanged(let info):
                failing = false
                guard let info, info.holder != holder else { continue }
                if seen?.holder != info.holder || seen?.token != info.token {
                    seen = (info.holder, info.token, Self.clockTime())
                }
                status("waiting: \(key) is held by \(info.holder) (token \(info.token)) since \(seen!.since)")
            case .elected(let lease):
                failing = false
                seen = nil
                supervisor.electionReported(lease)
            case .renewed(let lease):
                failing = false
                // The keeper's watchdog gets the term's new kill time.
                supervisor.renewed(lease)
            case .demoted(let lease, let reason):
                supervisor.demoted(lease, reason)
            case .storeError(let error):
                if !failing { status("\(CommandOutcome.message(for: error)); retrying") }
                failing = true
            }
            supervisor.campaignProgressed()
        }
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
