import ArgumentParser
@_spi(BatonStoreKit) import Baton

extension BatonCommand {
    /// `baton list [PREFIX]`: which keys are held, by whom, until when; `--rounds SYSTEM`: the recent rounds.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the held leases under a prefix, or the recent rounds of a system.",
            discussion: """
                Prints a table of the held leases whose key starts with PREFIX (every key without one), sorted by \
                key: holder, fencing token, time left (- where the store cannot tell) and metadata. With \
                --rounds SYSTEM, the rounds of SYSTEM whose records are kept instead, the greatest round name \
                (the newest, for rounds named by date or time) first, with winner and completer. --json prints \
                one JSON object, as GET /v2/leases and GET /v2/rounds/{system} answer. When more are held than \
                --limit, the first ones are printed and a note goes to standard error. Exits 0 (also when \
                nothing is listed); 2 for an invalid argument, 3 when the store failed.

                Examples:
                  baton list jobs/
                  KEY          HOLDER       TOKEN  LEFT    METADATA
                  jobs/mailer  host-a:4242  7      9.998s  "http://10.0.0.5:8080"
                  baton list --rounds nightly --limit 5
                  baton list jobs/ --json
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "List the leases whose key starts with this (default: every lease).")
        var prefix: String = ""

        @Option(help: ArgumentHelp("List the recent rounds of this system instead of leases.", valueName: "system"))
        var rounds: String?

        @Option(help: "The most entries to print (leases: 1–10000, default 1000; rounds: 1–1000, default 100).")
        var limit: Int?

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        func run() async throws {
            try await CommandOutcome.run {
                if let system = rounds {
                    if !prefix.isEmpty {
                        throw BatonError.invalidArgument("give a PREFIX or --rounds SYSTEM, not both")
                    }
                    try BatonValidation.name(system, "system")
                    let limit = limit ?? ListingLimits.defaultRounds
                    try BatonValidation.limit(limit, max: ListingLimits.maxRounds, "--limit")
                    let listing = try await options.withStore { try await $0.rounds(system: system, limit: limit) }
                    print(json ? try ListReport.json(listing, system: system) : ListReport.table(listing))
                    if listing.isTruncated { CommandOutcome.printError("more rounds are kept than --limit \(limit)") }
                    return CommandOutcome.success
                }
                try BatonValidation.prefix(prefix)
                let limit = limit ?? ListingLimits.defaultLeases
                try BatonValidation.limit(limit, max: ListingLimits.maxLeases, "--limit")
                let listing = try await options.withStore { try await $0.leases(prefix: prefix, limit: limit) }
                print(json ? try ListReport.json(listing, prefix: prefix) : ListReport.table(listing))
                if listing.isTruncated {
                    CommandOutcome.printError("more leases are held than --limit \(limit); give a longer prefix")
                }
                return CommandOutcome.success
            }
        }
    }
}
