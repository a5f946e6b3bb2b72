import Baton
import BatonStores
import ExampleSupport
import Foundation
import Logging
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A leader per shard: an order pipeline whose queue has `--shards` partitions (12 by default), consumed by however
/// many copies of this program run, each partition by exactly one of them. Each copy logs the partitions it owns as
/// they change, and "consumes" each one (a line per batch, with the partition's fencing token) until the partition
/// moves to another copy. SIGTERM or Ctrl-C hands the partitions to the other copies at once.
///
/// ```
/// ShardedConsumerExample [--store URL] [--id ID] [--shards 12] [--ttl 10s] [--batch 1s]
/// ```
///
/// Exit status: 0 stopped by a signal; 2 invalid argument (also another number of shards than the running copies');
/// 1 anything else.
@main
struct ShardedConsumer {
    static func main() async {
        var logger = Logger(label: "sharded-consumer")
        logger.logLevel = .info
        do {
            try await consume(logger: logger)
        } catch let error as BatonError where error.code == .invalidArgument {
            logger.error("\(error)")
            exit(2)
        } catch {
            logger.error("\(error)")
            exit(1)
        }
    }

    static func consume(logger: Logger) async throws {
        let arguments = try ExampleArguments()
        let storeURL = try StoreURL(arguments.value("store", environment: "BATON_STORE", default: "sqlite:baton.db"))
        let holder = arguments.value("id", default: LeaderElector.defaultHolder)
        guard let shards = Int(arguments.value("shards", default: "12")) else {
            throw BatonError.invalidArgument("--shards must be a whole number")
        }
        let ttl = try arguments.duration("ttl", default: "10s")
        let batch = try arguments.duration("batch", default: "1s")

        let store = try await LeaseStores.open(storeURL)
        var quiet = logger
        quiet.logLevel = .warning
        let orders = try ShardedElector(
            store: store, key: "examples/orders", holder: holder, shards: shards,
            configuration: ElectorConfiguration(ttl: ttl), logger: quiet)
        try await store.withRunning { _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await owned in orders.ownership {
                        logger.info("\(holder) owns partitions \(owned.sorted())")
                    }
                }
                group.addTask {
                    try await orders.withShards { shard in
                        var batches = 0
                        while !Task.isCancelled {
                            try await Task.sleep(for: batch)
                            batches += 1
                            // The work itself: in a real consumer, commit the partition's offset with the token, so a
                            // stale owner's late commit is refused.
                            logger.info("partition \(shard.index): batch \(batches) with token \(shard.token)")
                        }
                    }
                }
                // SIGTERM or SIGINT: every partition's work ends and is handed over.
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
                }
                // The first to end is the signal (or withShards refused or failed: its error is thrown here).
                try await group.next()
                group.cancelAll()
                do {
                    try await group.waitForAll()
                } catch is CancellationError {
                    // The work ended as asked.
                }
            }
        }
    }
}
