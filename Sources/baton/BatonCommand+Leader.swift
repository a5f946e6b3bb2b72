import ArgumentParser
@_spi(BatonStoreKit) import Baton

extension BatonCommand {
    /// `baton leader KEY`: shows who leads a key.
    struct Leader: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the current leader of a key.",
            discussion: """
                Prints the holder, its fencing token, the time left and its metadata, and exits 0; with --json, \
                one JSON object with the keys holder, token, metadata and remaining_ms (null when unknown). \
                Prints "no leader" and exits 1 if nobody holds the key; exits 2 for an invalid argument, 3 when the \
                store failed.

                Examples:
                  baton leader jobs/mailer
                  host-a:4242 (token 7, 9.998s left)
                  baton leader jobs/mailer --json
                  {"holder":"host-a:4242","metadata":null,"remaining_ms":9998,"token":7}
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The key.")
        var key: String

        @Flag(help: "Print one JSON object instead of a line of text.")
        var json = false

        func run() async throws {
            try await CommandOutcome.run {
                try BatonValidation.name(key, "key")
                return try await options.withStore { store in
                    guard let leader = try await store.current(key: key) else {
                        print("no leader")
                        return CommandOutcome.refused
                    }
                    print(json ? try LeaderReport.json(leader) : LeaderReport.line(leader))
                    return CommandOutcome.success
                }
            }
        }
    }
}
