@_spi(BatonStoreKit) import Baton
import Synchronization

/// Whether an ``EtcdLeaseStore`` runs, and the background work its `run()` carries out for it.
///
/// Work that parts of the store need while it runs (a key's watch, the keep-alive stream) is handed to
/// ``spawn(_:)`` and runs as a child task of the store's `run()`; work spawned before `run()` waits for it, and
/// nothing runs after it. Requests wait in ``ready()`` until `run()` began.
final class EtcdLifecycle: Sendable {
    typealias Job = @Sendable () async -> Void

    private enum Phase {
        case idle
        case running
        case stopping
        case ended
    }

    private struct State {
        var phase = Phase.idle
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiter = 0
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var failure: BatonError?
    }

    private let state = Mutex(State())
    /// The work to run, drained by `run()`.
    let jobs: AsyncStream<Job>
    private let jobQueue: AsyncStream<Job>.Continuation

    init() {
        (jobs, jobQueue) = AsyncStream<Job>.makeStream()
    }

    /// Marks the store running and lets the waiting requests go.
    /// - Throws: `invalidArgument` if the store ran before: a store runs once.
    func start() throws {
        let waiters = try state.withLock { state in
            guard case .idle = state.phase else {
                throw BatonError.invalidArgument("the etcd store's run() was called twice; a store runs once")
            }
            state.phase = .running
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Asks `run()` to close the store (its task was cancelled, or a graceful shutdown began).
    func requestStop() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if case .running = state.phase { state.phase = .stopping }
            if case .idle = state.phase { state.phase = .stopping }
            defer { state.stopWaiters = [] }
            return state.stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The store cannot go on (etcd refused its credentials): `run()` closes it and throws `error`.
    func fail(_ error: BatonError) {
        state.withLock { $0.failure = $0.failure ?? error }
        requestStop()
    }

    /// Why the store stopped, if it failed.
    var failure: BatonError? { state.withLock { $0.failure } }

    /// Returns once ``requestStop()`` was called.
    func stopRequested() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                switch state.phase {
                case .idle, .running:
                    state.stopWaiters.append(continuation)
                    return false
                case .stopping, .ended:
                    return true
                }
            }
            if now { continuation.resume() }
        }
    }

    /// Marks the store ended: waiting and later requests fail, spawned work no longer starts.
    func end() {
        let waiters = state.withLock { state in
            state.phase = .ended
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        jobQueue.finish()
        for waiter in waiters { waiter.resume(throwing: Self.stopped) }
    }

    /// Whether the store is closing or closed.
    var isStopped: Bool {
        state.withLock { state in
            switch state.phase {
            case .idle, .running: false
            case .stopping, .ended: true
            }
        }
    }

    /// Runs `job` as a child task of `run()` (once it runs); false if the store is closing or closed.
    @discardableResult
    func spawn(_ job: @escaping Job) -> Bool {
        guard !isStopped else { return false }
        if case .enqueued = jobQueue.yield(job) { return true }
        return false
    }

    /// Returns once the store runs.
    /// - Throws: `storeUnavailable` once the store is closing or closed; `CancellationError` if the caller is
    ///   cancelled first (the front's deadline bounds the wait).
    func ready() async throws {
        let id = try state.withLock { state -> Int? in
            switch state.phase {
            case .running: return nil
            case .stopping, .ended: throw Self.stopped
            case .idle:
                defer { state.nextWaiter += 1 }
                return state.nextWaiter
            }
        }
        guard let id else { return }
        let abort = RequestAbort.current
        try await RequestAbort.whileWaiting {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let outcome = state.withLock { state -> Result<Void, any Error>? in
                        if Task.isCancelled { return .failure(CancellationError()) }
                        if let reason = abort?.reason { return .failure(reason) }
                        switch state.phase {
                        case .running: return .success(())
                        case .stopping, .ended: return .failure(Self.stopped)
                        case .idle:
                            state.waiters[id] = continuation
                            return nil
                        }
                    }
                    if let outcome { continuation.resume(with: outcome) }
                }
            } onCancel: {
                let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(throwing: CancellationError())
            }
        } onAbort: { reason in
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: reason)
        }
    }

    static var stopped: BatonError { .storeUnavailable("the etcd store has stopped (its run() returned)") }
}
