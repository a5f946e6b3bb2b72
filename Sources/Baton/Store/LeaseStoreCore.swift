import CoreMetrics
import Metrics
import Synchronization

/// The operations of a store, named as metrics and errors name them.
enum StoreOperation: String, CaseIterable, Sendable {
    case acquire, renew, release, current, changes, claim, winner, complete, completion, heartbeat, leave, members
    case leases, rounds
    case leaveQueue = "leave_queue"
}

/// The shared part of every copy of one ``LeaseStore``: whether it runs, the request deadline, the metrics.
final class LeaseStoreCore: Sendable {
    private enum RunState {
        case idle(waiters: [Int: CheckedContinuation<Void, Never>], next: Int)
        case running
        case ended
    }

    /// The metrics of one operation.
    private struct OperationMetrics: Sendable {
        let requests: Counter
        let duration: Metrics.Timer
    }

    let storeName: String
    private let needsRun: Bool
    private let requestExecutor: (any TaskExecutor)?
    private let honoursRequestAbort: Bool
    let configuration: LeaseStore.Configuration
    /// Where spans go; nil when nobody traces.
    let tracing: BatonTracing?
    /// Bounds the acquires under way at once (renews and releases pass).
    let acquires = RequestLimiter(limit: LeaseStoreCore.maximumAcquiresUnderWay)
    /// 10,000 electors starting together wait past this bound, each without its request's buffers and calls.
    static let maximumAcquiresUnderWay = 256
    private let clock: BatonClock
    private let state = Mutex(RunState.idle(waiters: [:], next: 0))
    private let metrics: [StoreOperation: OperationMetrics]
    private let deadlines: RequestDeadlines

    init(
        storeName: String,
        needsRun: Bool,
        requestExecutor: (any TaskExecutor)?,
        honoursRequestAbort: Bool,
        configuration: LeaseStore.Configuration,
        clock: BatonClock
    ) {
        self.storeName = storeName
        self.needsRun = needsRun
        self.requestExecutor = requestExecutor
        self.honoursRequestAbort = honoursRequestAbort
        self.deadlines = RequestDeadlines(clock: clock, timeout: configuration.requestTimeout)
        self.configuration = configuration
        self.tracing = BatonTracing.resolve(configuration.tracer)
        self.clock = clock
        var metrics: [StoreOperation: OperationMetrics] = [:]
        for operation in StoreOperation.allCases {
            let dimensions = [("store", storeName), ("operation", operation.rawValue)]
            metrics[operation] = OperationMetrics(
                requests: Counter(label: "baton_store_requests_total", dimensions: dimensions),
                duration: Metrics.Timer(label: "baton_store_request_duration_seconds", dimensions: dimensions)
            )
        }
        self.metrics = metrics
    }

    // MARK: Lifecycle

    /// True once `run()` has begun and until it returns (always, for a store that needs no run).
    var isRunning: Bool {
        if !needsRun { return true }
        return state.withLock { if case .running = $0 { true } else { false } }
    }

    /// Marks the store running and wakes the calls waiting for it.
    func started() throws(BatonError) {
        let waiters = try state.withLock { state throws(BatonError) -> [CheckedContinuation<Void, Never>] in
            guard case .idle(let waiters, _) = state else {
                throw .invalidArgument("the \(storeName) store's run() was called twice; a store runs once")
            }
            state = .running
            return Array(waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Marks the store ended: later calls fail at once.
    func ended() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state = .ended }
            if case .idle(let waiters, _) = state { return Array(waiters.values) }
            return []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the store runs; waits up to the start timeout for `run()` to begin.
    /// - Throws: ``BatonError`` `storeUnavailable` naming the missing `run()`, or saying the store has stopped.
    func awaitRunning(_ operation: StoreOperation) async throws {
        guard needsRun else { return }
        switch state.withLock({ $0 }) {
        case .running: return
        case .ended: throw stopped(operation)
        case .idle: break
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForStart() }
            group.addTask { try await self.clock.sleep(for: self.configuration.startTimeout) }
            defer { group.cancelAll() }
            _ = try await group.next()
        }
        switch state.withLock({ $0 }) {
        case .running: return
        case .ended: throw stopped(operation)
        case .idle:
            throw BatonError.storeUnavailable(
                "the \(storeName) store is not running, so \(operation.rawValue) cannot reach it: call the store's "
                    + "run() first (add the store to your ServiceGroup before its electors, or use "
                    + "LeaseStore.withRunning)"
            )
        }
    }

    private func stopped(_ operation: StoreOperation) -> BatonError {
        .storeUnavailable(
            "the \(storeName) store has stopped (its run() returned), so \(operation.rawValue) cannot reach it")
    }

    private func waitForStart() async {
        let id = state.withLock { state -> Int? in
            guard case .idle(let waiters, let next) = state else { return nil }
            state = .idle(waiters: waiters, next: next + 1)
            return next
        }
        guard let id else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    guard case .idle(var waiters, let next) = state, !Task.isCancelled else { return true }
                    waiters[id] = continuation
                    state = .idle(waiters: waiters, next: next)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard case .idle(var waiters, let next) = state else { return nil }
                let waiter = waiters.removeValue(forKey: id)
                state = .idle(waiters: waiters, next: next)
                return waiter
            }
            waiter?.resume()
        }
    }

    // MARK: Requests

    /// Runs one request of the driver: once the store runs, within the request deadline, with errors mapped to
    /// ``BatonError`` and the request counted.
    func perform<T: Sendable>(
        _ operation: StoreOperation,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        if needsRun, !isRunning { try await awaitRunning(operation) }
        let metrics = metrics[operation]!
        metrics.requests.increment()
        let start = ContinuousClock.now
        defer { metrics.duration.recordInterval(since: start) }
        do {
            return try await withDeadline(operation, body)
        } catch let error as BatonError {
            countError(operation, error.code.description)
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            countError(operation, BatonError.Code.storeUnavailable.description)
            throw BatonError.storeUnavailable(
                "\(operation.rawValue) failed in the \(storeName) store (\(type(of: error)))", underlying: error)
        }
    }

    /// Runs `body` in a task of its own (on the driver's executor, if it has one), cancelled when the caller is
    /// cancelled or at the request deadline. At the deadline the request is a `timeout` at once, whatever `body`
    /// does with its cancellation: a driver's await that ignores cancellation cannot hold the caller past it (the
    /// cancelled `body` ends in the background).
    private func withDeadline<T: Sendable>(
        _ operation: StoreOperation,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        if honoursRequestAbort { return try await inCallersTask(operation, body) }
        let outcome = RequestOutcome<T>()
        let request = Task(executorPreference: requestExecutor) {
            do {
                outcome.finish(.success(try await body()))
            } catch {
                outcome.finish(.failure(error))
            }
        }
        let timeout = configuration.requestTimeout
        let storeName = storeName
        let deadline = deadlines.set {
            outcome.finish(
                .failure(
                    BatonError.timeout(
                        "\(operation.rawValue) got no answer from the \(storeName) store within \(timeout)")))
            request.cancel()
        }
        defer { deadlines.drop(deadline) }
        return try await withTaskCancellationHandler {
            try await outcome.value()
        } onCancel: {
            request.cancel()
        }
    }

    /// Runs `body` in the caller's task, for a driver that ends its waits when the request is aborted
    /// (``LeaseStoreDriver/honoursRequestAbort``): at the deadline, or when the caller is cancelled, the request's
    /// ``RequestAbort`` fires, and the request ends with the reason (`timeout`, or `CancellationError`).
    private func inCallersTask<T: Sendable>(
        _ operation: StoreOperation,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timeout = configuration.requestTimeout
        let abort = RequestAbort(deadline: clock.isHostClock ? ContinuousClock.now.advanced(by: timeout) : nil)
        let storeName = storeName
        let deadline = deadlines.set {
            abort.abort(
                BatonError.timeout("\(operation.rawValue) got no answer from the \(storeName) store within \(timeout)"))
        }
        defer { deadlines.drop(deadline) }
        do {
            return try await withTaskCancellationHandler {
                try await RequestAbort.$current.withValue(abort) { try await body() }
            } onCancel: {
                abort.abort(CancellationError())
            }
        } catch {
            // The driver may have wrapped the failure of a wait it saw aborted: the reason is the answer.
            throw abort.reason ?? error
        }
    }

    private func countError(_ operation: StoreOperation, _ code: String) {
        Counter(
            label: "baton_store_request_errors_total",
            dimensions: [("store", storeName), ("operation", operation.rawValue), ("code", code)]
        ).increment()
    }
}

/// The outcome of one request: the first of its body's result and its deadline, delivered to the one caller.
private final class RequestOutcome<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case done(Result<T, any Error>)
        case delivered
    }

    private let state = Mutex(State.pending)

    /// Settles the outcome, unless it is settled already (a body ending after its deadline).
    func finish(_ result: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .pending:
                state = .done(result)
                return nil
            case .waiting(let continuation):
                state = .delivered
                return continuation
            case .done, .delivered:
                return nil
            }
        }
        waiter?.resume(with: result)
    }

    /// The outcome, once settled.
    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let settled = state.withLock { state -> Result<T, any Error>? in
                if case .done(let result) = state {
                    state = .delivered
                    return result
                }
                state = .waiting(continuation)
                return nil
            }
            if let settled { continuation.resume(with: settled) }
        }
    }
}

extension Metrics.Timer {
    /// Records the time since `start` on the continuous clock.
    fileprivate func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = start.duration(to: .now)
        record(duration: elapsed)
    }
}
