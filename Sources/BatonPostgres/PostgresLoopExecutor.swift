import NIOCore

/// The event loop of a store's one shared connection, as the executor its request tasks prefer (see
/// ``Baton/LeaseStoreDriver/requestExecutor``).
///
/// The connection writes and reads on that loop. A request task that runs there sends its statement and takes up
/// the answer on the loop's thread, where the answer arrived, instead of waking a thread of the shared pool twice
/// on the way (once to send, once to resume).
final class PostgresLoopExecutor: TaskExecutor {
    /// The loop the shared connection is made on.
    let loop: any EventLoop

    init(on loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        loop.execute { unowned.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
