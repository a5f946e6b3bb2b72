import ArgumentParser

/// `baton-chaos`: the processes of the fault-injection suite `scripts/chaos` — the work a leader runs, a library
/// worker, a TCP proxy that injects network faults, and the property checker.
@main
struct BatonChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-chaos",
        abstract: "The processes of the fault-injection suite scripts/chaos.",
        subcommands: [Record.self, Worker.self, Proxy.self, Check.self]
    )
}
