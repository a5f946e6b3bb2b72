import NIOCore

/// A NIO event loop as a Swift task executor: tasks that prefer it run their jobs on the loop's thread.
///
/// The store's commands are written and answered on its connections' loop, so a request task that runs there
/// (see ``Baton/LeaseStoreDriver/requestExecutor``) starts, sends, and resumes with the reply without a switch
/// to another thread.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
