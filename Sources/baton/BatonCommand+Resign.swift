import ArgumentParser
@_spi(BatonStoreKit) import Baton

extension BatonCommand {
    /// `baton resign KEY --id ID`: ends the current term of a key if ID holds it.
    struct Resign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release a key if the given holder holds it, so the next candidate is elected at once.",
            discussion: """
                Prints "released KEY (token N, held by ID)" and exits 0. Prints "no leader" or "KEY is held by X, \
                not ID" and exits 1 if ID does not hold the key. The release is a compare-and-delete of that term: \
                a newer term is never touched.

                This is for a holder that is gone or stuck. A live holder learns of it at its next renewal (or \
                sooner from the store's change feed) and only then stops its work, while a waiting candidate may \
                already have taken over. To stop a live `baton run` cleanly, send it SIGTERM instead: it stops its \
                command first and then releases the key.

                Example:
                  baton resign jobs/mailer --id host-a:4242
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The key.")
        var key: String

        @Option(help: ArgumentHelp("The holder whose term to end (as `baton leader` prints it).", valueName: "id"))
        var id: String

        func run() async throws {
            try await CommandOutcome.run {
                try BatonValidation.name(key, "key")
                try BatonValidation.name(id, "--id")
                return try await options.withStore { store in
                    guard let leader = try await store.current(key: key) else {
                        print("no leader")
                        return CommandOutcome.refused
                    }
                    guard leader.holder == id else {
                        print("\(key) is held by \(leader.holder), not \(id)")
                        return CommandOutcome.refused
                    }
                    let lease = Lease(
                        key: key,
                        holder: leader.holder,
                        token: leader.token,
                        ttl: leader.ttl ?? .seconds(1),
                        metadata: leader.metadata
                    )
                    try await store.release(lease)
                    print("released \(key) (token \(leader.token), held by \(id))")
                    return CommandOutcome.success
                }
            }
        }
    }
}
