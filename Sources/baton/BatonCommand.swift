import ArgumentParser

/// The `baton` command: leader election from the shell.
@main
struct BatonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton",
        abstract: "Leader election for Swift on Linux: elect one of many processes or hosts over a shared store.",
        discussion: """
            The store is chosen by URL with --store or BATON_STORE (default sqlite:baton.db): memory:, \
            sqlite:PATH; later redis://host:port, etcd://host:port, postgres://user:pass@host:port/db and \
            s3://bucket/prefix/?endpoint=URL&region=R. A URL with a password belongs in a file, named with \
            --store-file or BATON_STORE_FILE, since ps shows command lines.

            Exit status: 0 success (won, completed, a leader exists); 1 the store said no (lost, not the winner, \
            already completed, no leader); 2 invalid argument (a malformed name, duration or store URL); \
            3 the store failed, timed out or refused the credentials (safe to retry); 64 a usage error. \
            `baton run` exits with its command's status, or 75 when leadership was lost, 126/127 when the \
            command could not be executed or found (see baton run --help).

            Examples:
              baton run --key jobs/mailer -- ./mailer          # run ./mailer on one host at a time
              baton run --key nightly --round 2026-11-23 -- ./clean.sh   # run once among all hosts
              baton leader jobs/mailer --json
            """,
        subcommands: [
            Serve.self, Run.self, Elect.self, Complete.self, Leader.self, List.self, Watch.self, Resign.self,
            Campaign.self, Cron.self,
        ]
    )

    @OptionGroup var options: StoreOptions
}
