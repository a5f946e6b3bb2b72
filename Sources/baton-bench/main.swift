import Baton
import BatonPostgres
import BatonSQLite
import Foundation

// Measures the latency of single store operations as a client sees them, for scripts/bench:
//
//     baton-bench STORE_URL COUNT
//
// For COUNT rounds on one key: acquire a free key (a new term), renew it, and release it, each timed on the
// monotonic clock. Prints one JSON object per operation: {"scenario", "store", "rounds", "median_ms", "p90_ms",
// "p99_ms", "min_ms", "max_ms"}. The first 10 rounds warm up the connections and are not counted.

let arguments = CommandLine.arguments
guard arguments.count == 3, let count = Int(arguments[2]), count > 0 else {
    FileHandle.standardError.write(Data("usage: baton-bench STORE_URL COUNT\n".utf8))
    exit(2)
}
let url = try StoreURL(arguments[1])
let store: any LeaseStore
switch url.kind {
case .postgres: store = try await PostgresLeaseStore(url: url)
case .sqlite: store = try await SQLiteLeaseStore(path: url.path)
default: store = MemoryLeaseStore()
}

let key = "bench-latency-\(getpid())"
let clock = ContinuousClock()
var acquireSamples: [Duration] = []
var renewSamples: [Duration] = []
for round in 0..<(count + 10) {
    var start = clock.now
    guard let lease = try await store.acquire(key: key, holder: "bench", ttl: .seconds(10)).lease else {
        FileHandle.standardError.write(Data("baton-bench: the key \(key) is held by someone else\n".utf8))
        exit(1)
    }
    let acquired = clock.now - start
    start = clock.now
    _ = try await store.renew(lease, ttl: .seconds(10))
    let renewed = clock.now - start
    try await store.release(lease)
    if round >= 10 {
        acquireSamples.append(acquired)
        renewSamples.append(renewed)
    }
}
try await store.close()

func report(_ operation: String, _ samples: [Duration]) -> String {
    let sorted = samples.map { $0.batonSeconds * 1000 }.sorted()
    func at(_ fraction: Double) -> Double { sorted[Int(fraction * Double(sorted.count - 1))] }
    func ms(_ value: Double) -> Double { (value * 100).rounded() / 100 }
    let median =
        sorted.count.isMultiple(of: 2)
        ? (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2 : sorted[sorted.count / 2]
    let fields: [(String, String)] = [
        ("name", "\"latency-\(url.scheme == "postgresql" ? "postgres" : url.scheme)\""),
        ("scenario", "\"\(operation) latency (one client, sequential)\""),
        ("store", "\"\(url.scheme)\""),
        ("rounds", "\(sorted.count)"),
        ("median_ms", "\(ms(median))"),
        ("p90_ms", "\(ms(at(0.9)))"),
        ("p99_ms", "\(ms(at(0.99)))"),
        ("min_ms", "\(ms(sorted[0]))"),
        ("max_ms", "\(ms(sorted[sorted.count - 1]))"),
    ]
    return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
}
print(report("acquire (new term)", acquireSamples))
print(report("renew", renewSamples))
