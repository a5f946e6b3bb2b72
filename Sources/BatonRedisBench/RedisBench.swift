import Baton
import BatonRedis
import Synchronization

/// `BatonRedisBench claims|acquires URL CONCURRENCY COUNT TTL_MS`, used by `scripts/bench`: with CONCURRENCY
/// tasks, either claims COUNT fresh rounds (`claim`: the script is `SET round candidate NX PX retention`, the
/// equivalent of redis-benchmark's `SET key value NX PX ttl`) or acquires COUNT fresh lease keys (`acquire`:
/// the full lease script with its token counter and publish), through ``RedisLeaseStore``. Prints one JSON line:
/// `{"operations": COUNT, "seconds": S, "per_second": R, "won": W}`.
@main
struct RedisBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 6, ["claims", "acquires"].contains(arguments[1]), let concurrency = Int(arguments[3]),
            let count = Int(arguments[4]), let ttl = Int(arguments[5])
        else {
            print("usage: BatonRedisBench claims|acquires URL CONCURRENCY COUNT TTL_MS")
            return
        }
        var configuration = RedisLeaseStore.Configuration()
        configuration.poolSize = 4
        let store = try RedisLeaseStore(arguments[2], configuration: configuration)
        let prefix = "bench-\(UInt32.random(in: 0...UInt32.max))"
        let claims = arguments[1] == "claims"
        // Warm up: connect the pool and load the scripts.
        for index in 0..<200 {
            _ = try await store.acquire(key: "\(prefix)-warm-\(index)", holder: "h", ttl: .milliseconds(ttl))
            _ = try await store.claim(system: prefix, round: "warm-\(index)", candidate: "h", retention: .seconds(10))
        }
        let counters = Counters()
        let clock = ContinuousClock()
        let started = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    while true {
                        let index = counters.next.add(1, ordering: .relaxed).oldValue
                        if index >= count { return }
                        let won: Bool
                        if claims {
                            won = try await store.claim(
                                system: prefix,
                                round: String(index),
                                candidate: "candidate-\(worker)",
                                retention: .milliseconds(ttl)
                            ).isWon
                        } else {
                            won =
                                try await store.acquire(
                                    key: "\(prefix)-\(index)",
                                    holder: "holder-\(worker)",
                                    ttl: .milliseconds(ttl)
                                ).lease != nil
                        }
                        if won { counters.acquired.add(1, ordering: .relaxed) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = (clock.now - started).batonSeconds
        try await store.close()
        let rate = Int(Double(count) / seconds)
        print(
            "{\"operations\": \(count), \"seconds\": \(seconds), \"per_second\": \(rate), "
                + "\"won\": \(counters.acquired.load(ordering: .relaxed))}"
        )
    }
}

/// Shared by the workers.
final class Counters: Sendable {
    let next = Atomic<Int>(0)
    let acquired = Atomic<Int>(0)
}
