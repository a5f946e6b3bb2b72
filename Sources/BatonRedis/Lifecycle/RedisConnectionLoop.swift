/// Where a ``RedisLeaseStore`` makes its connections: callers ask for a connection to be made, and the store's
/// `run()` makes it in a child task of its own. So no connecting work outlives `run()`: when it ends, the loop
/// stops taking work and cancels what is under way (connecting is cancellable, see
/// ``RedisConnection/connect(to:group:subscriber:onPush:)``).
///
/// Work asked for before `run()` begins waits in the loop's queue; work asked for after it ended is refused.
final class RedisConnectionLoop: Sendable {
    typealias Work = @Sendable () async -> Void

    private let work: AsyncStream<Work>
    private let queue: AsyncStream<Work>.Continuation

    init() {
        (work, queue) = AsyncStream<Work>.makeStream()
    }

    /// Queues `work` for `run()`.
    /// - Returns: false if the loop has ended (the work will never run).
    func submit(_ work: @escaping Work) -> Bool {
        if case .terminated = queue.yield(work) { return false }
        return true
    }

    /// Runs queued work, each as a child task, until the calling task is cancelled or ``finish()`` is called;
    /// then cancels the work under way and returns when it has returned. Call it once.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await item in work { group.addTask { await item() } }
            group.cancelAll()
        }
        queue.finish()
    }

    /// Stops the loop: ``run()`` returns once the work under way has been cancelled and returned.
    func finish() {
        queue.finish()
    }
}
