import Baton
import BatonStores
import ExampleSupport
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A queue-consumer-style worker: while it leads `examples/ledger-worker`, it takes the next job, works on it, and
/// records it in a ``FencedLedger`` under its fencing token. A worker that lost its lease while paused has its late
/// write refused by the ledger, however long the pause lasted — Kleppmann's fencing example made concrete.
///
/// ```
/// FencedWorkerExample --ledger PATH [--store URL] [--id ID] [--jobs N] [--work 200ms] [--ttl 10s]
///                     [--pause-before-first-write yes]
/// ```
///
/// `--pause-before-first-write yes` stops the process with SIGSTOP (as a long garbage-collection pause or a frozen
/// VM would) after it is elected and before its first write; `kill -CONT` resumes it.
///
/// Exit status: 0 all jobs recorded; 4 the ledger refused a stale token; 2 invalid argument; 1 anything else.
@main
struct FencedWorker {
    static func main() async {
        var logger = Logger(label: "fenced-worker")
        logger.logLevel = .info
        do {
            try await work(logger: logger)
        } catch let error as StaleFencingToken {
            logger.error("stale leader stopped: \(error)")
            exit(4)
        } catch let error as BatonError where error.code == .invalidArgument {
            logger.error("\(error)")
            exit(2)
        } catch {
            logger.error("\(error)")
            exit(1)
        }
    }

    static func work(logger: Logger) async throws {
        let arguments = try ExampleArguments()
        let ledger = FencedLedger(path: arguments.value("ledger", environment: "LEDGER", default: "ledger.txt"))
        let storeURL = try StoreURL(arguments.value("store", environment: "BATON_STORE", default: "sqlite:baton.db"))
        let holder = arguments.value("id", default: LeaderElector.defaultHolder)
        guard let jobs = Int(arguments.value("jobs", default: "5")), jobs > 0 else {
            throw BatonError.invalidArgument("--jobs must be a positive whole number")
        }
        let workTime = try arguments.duration("work", default: "200ms")
        let ttl = try arguments.duration("ttl", default: "10s")
        let pauseOnce = arguments.value("pause-before-first-write", default: "no") == "yes"

        let store = try await LeaseStores.open(storeURL)
        let elector = try LeaderElector(
            store: store,
            key: "examples/ledger-worker",
            holder: holder,
            configuration: ElectorConfiguration(ttl: ttl),
            logger: logger
        )
        // The refusal is kept apart from what `withLeadership` throws: when the elector notices first that the
        // term is over, the call throws `lost`, and the refused write must still be reported as such.
        let refusal = Mutex<StaleFencingToken?>(nil)
        do {
            try await store.withRunning { _ in
                try await elector.withLeadership { lease in
                    logger.info("elected with token \(lease.token)")
                    for _ in 0..<jobs {
                        let job = try ledger.read().records.count + 1
                        try await Task.sleep(for: workTime)  // the work itself
                        if pauseOnce {
                            // Nothing between the pause and the write can notice that leadership ended meanwhile.
                            pauseOnceBeforeWriting(logger: logger)
                        }
                        do {
                            try ledger.append("job \(job) holder \(holder)", token: lease.token, resource: lease.key)
                        } catch let stale as StaleFencingToken {
                            refusal.withLock { $0 = stale }
                            throw stale
                        }
                        logger.info("recorded job \(job) with token \(lease.token)")
                    }
                }
            }
        } catch {
            if let stale = refusal.withLock({ $0 }) { throw stale }
            throw error
        }
    }

    /// Stops this process with SIGSTOP the first time it is called.
    private static func pauseOnceBeforeWriting(logger: Logger) {
        guard
            !paused.withLock({ paused in
                defer { paused = true }
                return paused
            })
        else { return }
        logger.info("pausing before the write (SIGSTOP); resume with kill -CONT \(getpid())")
        raise(SIGSTOP)
        logger.info("resumed; writing with the token from before the pause")
    }

    private static let paused = Mutex(false)
}
