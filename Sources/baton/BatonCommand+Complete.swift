import ArgumentParser
@_spi(BatonStoreKit) import Baton

extension BatonCommand {
    /// `baton complete SYSTEM ROUND`: records that the winner finished the round.
    struct Complete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record that the winner of a round completed it.",
            discussion: """
                Prints "completed" and exits 0; repeating it is fine. Exits 1 if the candidate did not win the \
                round, or if another identity already completed it; 2 for an invalid argument; 3 when the store \
                failed.

                Example:
                  baton complete nightly-cleaner 2026-11-23 --candidate host-a
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The system whose round this is.")
        var system: String

        @Argument(help: "The round.")
        var round: String

        @Option(help: ArgumentHelp("The winner completing the round (default: this host's name).", valueName: "id"))
        var candidate: String?

        func run() async throws {
            try await CommandOutcome.run {
                try BatonValidation.round(system: system, round: round)
                let candidate = try Candidate.resolve(candidate)
                return try await options.withStore { store in
                    let election = try RoundElection(store: store, system: system)
                    try await election.complete(round: round, candidate: candidate)
                    print("completed")
                    return CommandOutcome.success
                }
            }
        }
    }
}
