import ArgumentParser
@_spi(BatonStoreKit) import Baton
import Foundation
import UnixSignals

extension BatonCommand {
    /// `baton watch KEY`: prints one line per leader change until interrupted.
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one line per leader change of a key, until interrupted.",
            discussion: """
                The first line is the current leader; then one line per change (a new term, a release, an \
                expiry, new metadata). Each line starts with the UTC time it was seen: \
                "2026-11-23T08:00:01.250Z host-a (token 7, 9.998s left)" or "... no leader". With --json, one \
                object per line: {"at":"...","leader":{"holder","token","metadata","remaining_ms"}}, or \
                "leader":null. When the store fails, an error goes to standard error and watching resumes when \
                the store is back. Exits 0 on SIGINT or SIGTERM; 2 for an invalid argument; 74 when standard \
                output is closed (its reader went away).

                Examples:
                  baton watch jobs/mailer --store sqlite:/var/lib/baton.db
                  baton watch jobs/mailer --json | jq -r .leader.holder
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The key.")
        var key: String

        @Flag(help: "Print one JSON object per line instead of text.")
        var json = false

        func run() async throws {
            try await CommandOutcome.run {
                try BatonValidation.name(key, "key")
                let key = self.key
                let json = self.json
                StandardOutput.failWritesToClosedPipes()
                return try await options.withStore { store in
                    let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
                    return await withTaskGroup(of: Int32.self) { group in
                        group.addTask {
                            var iterator = signals.makeAsyncIterator()
                            _ = await iterator.next()
                            return CommandOutcome.success
                        }
                        group.addTask {
                            guard await Self.follow(store, key: key, json: json) else {
                                CommandOutcome.printError(StandardOutput.closedMessage)
                                return CommandOutcome.outputClosed
                            }
                            return CommandOutcome.success
                        }
                        let status = await group.next() ?? CommandOutcome.success
                        group.cancelAll()
                        return status
                    }
                }
            }
        }

        /// Prints each new observation of `key` until cancelled, resubscribing with backoff when the store fails;
        /// false when standard output was closed.
        private static func follow(_ store: LeaseStore, key: String, json: Bool) async -> Bool {
            var last: LeaderInfo?? = .none
            var failures = 0
            while !Task.isCancelled {
                do {
                    for try await info in try store.changes(key: key) {
                        if failures > 0 {
                            CommandOutcome.printError("the store is reachable again")
                            failures = 0
                        }
                        if case .some(let previous) = last, same(previous, info) { continue }
                        last = .some(info)
                        guard StandardOutput.write(line(info, json: json) + "\n") else { return false }
                    }
                    if Task.isCancelled { return true }
                } catch {
                    if Task.isCancelled { return true }
                    if failures == 0 { CommandOutcome.printError("\(CommandOutcome.message(for: error)); retrying") }
                    failures += 1
                }
                let delay = ElectorConfiguration.Backoff().nominalDelay(attempt: max(1, failures))
                do { try await Task.sleep(for: delay) } catch { return true }
            }
            return true
        }

        /// Whether two observations show the same term with the same metadata (time left is ignored).
        static func same(_ first: LeaderInfo?, _ second: LeaderInfo?) -> Bool {
            switch (first, second) {
            case (nil, nil): true
            case (let first?, let second?): first.isSameTerm(as: second)
            default: false
            }
        }

        /// One line for an observation.
        static func line(_ info: LeaderInfo?, json: Bool, at date: Date = Date()) -> String {
            let at = timestamp(date)
            if json {
                let leader = info.flatMap { try? LeaderReport.json($0) } ?? "null"
                return #"{"at":"\#(at)","leader":\#(leader)}"#
            }
            return "\(at) " + (info.map(LeaderReport.line) ?? "no leader")
        }

        /// `2026-11-23T08:00:01.250Z`.
        static func timestamp(_ date: Date) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: date)
        }
    }
}
