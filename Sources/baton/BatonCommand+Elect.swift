import ArgumentParser
@_spi(BatonStoreKit) import Baton

extension BatonCommand {
    /// `baton elect SYSTEM ROUND`: claims one round of a system.
    struct Elect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Claim one round of a system: the first candidate wins, the others lose.",
            discussion: """
                Prints "won" and exits 0, or prints "lost: winner is X" and exits 1. The winner claiming again \
                wins again, so a cron job may retry after an error. Exits 2 for an invalid argument, 3 when the \
                store failed (the outcome is unknown: retry). `baton run --round` does all of this around a command.

                Example:
                  baton elect nightly-cleaner 2026-11-23 && ./clean.sh && baton complete nightly-cleaner 2026-11-23
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The system whose round this is, e.g. nightly-cleaner.")
        var system: String

        @Argument(help: "The round, e.g. 2026-11-23 or 2026-11-23T08:00.")
        var round: String

        @Option(help: ArgumentHelp("Who claims the round (default: this host's name).", valueName: "id"))
        var candidate: String?

        @Option(help: ArgumentHelp("How long the round's record is kept: 250ms, 10s, 5m, 2h, 7d.", valueName: "time"))
        var retention: String = "7d"

        func run() async throws {
            try await CommandOutcome.run {
                let retention = try parseDurationOption(retention, option: "--retention")
                try BatonValidation.round(system: system, round: round)
                let candidate = try Candidate.resolve(candidate)
                return try await options.withStore { store in
                    let election = try RoundElection(store: store, system: system, retention: retention)
                    switch try await election.claim(round: round, candidate: candidate) {
                    case .won:
                        print("won")
                        return CommandOutcome.success
                    case .lost(let winner):
                        print("lost: winner is \(winner)")
                        return CommandOutcome.refused
                    }
                }
            }
        }
    }
}
