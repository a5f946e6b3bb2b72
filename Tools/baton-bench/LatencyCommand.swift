import ArgumentParser
import Baton
import BatonStores
import Foundation

/// `baton-bench latency`: single-operation latency as one client sees it. For COUNT rounds on one key: acquire
/// the free key (a new term), renew it and release it, each timed on the monotonic clock. The first 10 rounds
/// warm up the connections and are not counted. Prints one line for acquire and one for renew.
struct LatencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Acquire and renew latency of one sequential client."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "Measured rounds.") var count = 1000

    func run() async throws {
        let store = try await LeaseStores.open(options.store)
        let running = Task { try await store.run() }
        let key = "bench-latency-\(getpid())"
        let clock = ContinuousClock()
        var acquires = LatencySummary()
        var renews = LatencySummary()
        for round in 0..<(count + 10) {
            var start = clock.now
            guard let lease = try await store.acquire(key: key, holder: "bench", ttl: .seconds(10)).lease else {
                throw BenchFailure("the key \(key) is held by someone else")
            }
            let acquired = clock.now - start
            start = clock.now
            _ = try await store.renew(lease, ttl: .seconds(10))
            let renewed = clock.now - start
            try await store.release(lease)
            if round >= 10 {
                acquires.record(acquired)
                renews.record(renewed)
            }
        }
        running.cancel()
        try await running.value
        let storeLabel = storeName(options.store)
        for (operation, summary) in [("acquire (new term)", acquires), ("renew", renews)] {
            emit(
                summary.fields.merging([
                    "name": options.name ?? "latency-\(storeLabel)",
                    "kind": "latency",
                    "scenario": "\(operation) latency (one client, sequential)",
                    "store": storeLabel,
                ]) { $1 }
            )
        }
    }
}

/// `baton-bench claims`: round claims per second through the store, CONCURRENCY tasks claiming COUNT fresh rounds
/// (one new round each, so every claim writes), and, with `--acquires`, lease acquires of COUNT fresh keys.
struct ClaimsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claims",
        abstract: "Claims (or lease acquires) of fresh rounds per second, with concurrent clients."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "Concurrent tasks.") var concurrency = 50
    @Option(help: "Operations in all.") var count = 50_000
    @Option(help: "Retention of each round (or ttl of each lease), in milliseconds.") var ttlMs = 10_000
    @Flag(help: "Acquire fresh lease keys instead of claiming rounds.") var acquires = false

    func run() async throws {
        let store = try await LeaseStores.open(options.store)
        let running = Task { try await store.run() }
        let prefix = "bench-\(UInt32.random(in: 0...UInt32.max))"
        let ttl = Duration.milliseconds(ttlMs)
        // Warm up: connections, prepared statements, scripts.
        for index in 0..<200 {
            _ = try await store.acquire(key: "\(prefix)-warm-\(index)", holder: "h", ttl: ttl)
            _ = try await store.claim(system: prefix, round: "warm-\(index)", candidate: "h", retention: ttl)
        }
        let next = Counter()
        let won = Counter()
        let acquires = acquires
        let count = count
        var latencies = LatencySummary()
        let clock = ContinuousClock()
        let started = clock.now
        try await withThrowingTaskGroup(of: LatencySummary.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var summary = LatencySummary()
                    while true {
                        let index = next.increment()
                        if index >= count { return summary }
                        let start = clock.now
                        let isWon: Bool
                        if acquires {
                            isWon =
                                try await store.acquire(key: "\(prefix)-\(index)", holder: "holder-\(worker)", ttl: ttl)
                                .lease != nil
                        } else {
                            isWon =
                                try await store.claim(
                                    system: prefix,
                                    round: String(index),
                                    candidate: "candidate-\(worker)",
                                    retention: ttl
                                ).isWon
                        }
                        summary.record(clock.now - start)
                        if isWon { _ = won.increment() }
                    }
                }
            }
            for try await summary in group { latencies.merge(summary) }
        }
        let seconds = (clock.now - started).milliseconds / 1000
        running.cancel()
        try await running.value
        guard won.value == count else {
            throw BenchFailure("only \(won.value) of \(count) fresh claims were won: the store is not empty")
        }
        emit(
            latencies.fields.merging([
                "kind": "operations",
                "operation": acquires ? "acquire" : "claim",
                "store": storeName(options.store),
                "operations": count,
                "concurrency": concurrency,
                "seconds": (seconds * 1000).rounded() / 1000,
                "per_second": Int(Double(count) / seconds),
            ]) { $1 }
        )
    }
}
