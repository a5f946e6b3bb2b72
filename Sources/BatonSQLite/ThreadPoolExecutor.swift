import NIOPosix

/// Runs a task's jobs on the store's SQLite thread.
///
/// The store's turns run their statements one after the other, each on that thread. With the turns' task on the
/// same thread, a statement's answer resumes the task where it already is: a turn of many statements wakes no
/// other thread (on the global executor every statement cost two wake-ups, one each way).
final class ThreadPoolExecutor: TaskExecutor {
    private let threadPool: NIOThreadPool

    init(_ threadPool: NIOThreadPool) {
        self.threadPool = threadPool
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        threadPool.submit { state in
            switch state {
            case .active:
                job.runSynchronously(on: executor)
            case .cancelled:
                // The thread has stopped: the job still runs, on the global executor.
                globalConcurrentExecutor.enqueue(job)
            }
        }
    }
}
