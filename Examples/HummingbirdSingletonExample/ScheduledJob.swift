import Baton
import Logging
import ServiceLifecycle
import Synchronization

/// A job that runs every `every` on the leader only, as a ServiceLifecycle service next to the elector.
///
/// Each pass of the loop joins the elector's campaign with ``LeaderElector/withLeadership(_:)``: on a follower the
/// call waits until this replica is elected; on the leader the closure runs the job on its schedule until
/// leadership ends (the closure is then cancelled and the call throws `lost`), and the loop waits to be elected
/// again. A graceful shutdown cancels the loop.
final class ScheduledJob: Service, Sendable {
    private let elector: LeaderElector
    private let every: Duration
    private let logger: Logger
    private let count = Mutex(0)

    init(elector: LeaderElector, every: Duration, logger: Logger) {
        self.elector = elector
        self.every = every
        self.logger = logger
    }

    /// How many times this replica has run the job.
    var runs: Int { count.withLock { $0 } }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.elector.withLeadership { lease in
                        while true {
                            self.runOnce(token: lease.token)
                            try await Task.sleep(for: self.every)
                        }
                    }
                } catch let error as BatonError where error.code == .lost {
                    self.logger.warning("the job stopped: \(error.message)")
                } catch {
                    return  // cancelled: the replica is shutting down
                }
            }
        }
    }

    private func runOnce(token: FencingToken) {
        let runs = count.withLock { count in
            count += 1
            return count
        }
        // A real job passes `token` to what it writes, so that a stale leader's writes are refused.
        logger.info("running the scheduled job", metadata: ["run": "\(runs)", "token": "\(token)"])
    }
}
