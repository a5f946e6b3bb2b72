import ArgumentParser

/// The Swift side of `scripts/bench`: drivers that run inside one process against a store, and the latency
/// summary every scenario's percentiles go through. Each subcommand prints one JSON object per line.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baton-bench",
        abstract: "Benchmark drivers for scripts/bench.",
        subcommands: [
            SummaryCommand.self, LatencyCommand.self, ClaimsCommand.self, ScaleLeasesCommand.self,
            WaitersCommand.self, StoreCostCommand.self, SemaphoreCommand.self, ShardsCommand.self,
        ]
    )
}

/// Options every store-driving subcommand takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The store URL (sqlite:PATH, postgres://..., redis://..., memory:).")
    var store: String

    @Option(name: .long, help: "The JSON `name` field: the scenario name scripts/bench reruns it by.")
    var name: String?
}
