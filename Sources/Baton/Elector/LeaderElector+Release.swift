import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Tracing

extension LeaderElector {
    // MARK: Release after work

    /// The work of the term `token` handed to a ``withLeadership(_:)`` body has returned.
    package func workReturned(_ token: FencingToken) {
        let waiters = shared.withLock { shared -> [CheckedContinuation<Bool, Never>] in
            let left = (shared.work[token] ?? 1) - 1
            shared.work[token] = left > 0 ? left : nil
            guard left <= 0 else { return [] }
            let ready = shared.workWaiters.filter { $0.value.token == token }
            for id in ready.keys { shared.workWaiters[id] = nil }
            return ready.values.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Whether work of the term `token` runs (a body given that term has not returned).
    func hasWork(of token: FencingToken) -> Bool {
        shared.withLock { $0.work[token] != nil }
    }

    /// Waits, even if the calling task is cancelled, until no work of the term `token` runs (true) or the
    /// elector's clock reaches `deadline` first (false).
    func waitForWork(of token: FencingToken, until deadline: Duration) async -> Bool {
        let id = shared.withLock { $0.takeID() }
        let clock = self.clock
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let idle = shared.withLock { shared in
                if shared.work[token] == nil { return true }
                shared.workWaiters[id] = (token, continuation)
                return false
            }
            if idle {
                continuation.resume(returning: true)
                return
            }
            // Unstructured on purpose: the wait must not end with the caller's cancellation, only with the work or
            // at the deadline.
            Task { [weak self] in
                try? await clock.sleep(until: deadline)
                self?.shared.withLock { $0.workWaiters.removeValue(forKey: id) }?.continuation.resume(returning: false)
            }
        }
    }

    /// Releases the term of `release` once its work has returned; if the work is still running at the term's
    /// deadline, releases nothing (the store's ttl frees the key: a successor may start after it, and the work
    /// that is still running can only be refused by its fencing token).
    func releaseAfterWork(_ release: ElectorStateMachine.Release) async {
        beginWrite()
        defer { endWrite() }
        let token = release.lease.token
        if hasWork(of: token) {
            logger.info("waiting for the work to return before releasing", metadata: ["baton.token": "\(token)"])
        }
        if await waitForWork(of: token, until: release.workDeadline) {
            await releaseUncancelled(release.lease)
        } else {
            metrics.releaseSkipped.increment()
            logger.warning(
                "the work was still running at the term's deadline: not releasing; the key expires after its ttl",
                metadata: ["baton.token": "\(token)"])
        }
    }

    /// Releases `lease` even if the calling task is cancelled, waiting at most the release timeout.
    func releaseUncancelled(_ lease: Lease) async {
        let store = self.store
        let logger = self.logger
        let context = termTrace(of: lease.token)?.context ?? ServiceContext.current ?? .topLevel
        await uncancelled("release; the term will expire") {
            try await ServiceContext.$current.withValue(context) { try await store.release(lease) }
            logger.info("released", metadata: ["baton.token": "\(lease.token)"])
        }
    }

    /// Runs `operation` even if the calling task is cancelled, waiting at most the release timeout; logs a
    /// warning naming `what` if it fails or times out.
    func uncancelled(_ what: String, _ operation: @escaping @Sendable () async throws -> Void) async {
        let logger = self.logger
        let clock = self.clock
        let timeout = configuration.releaseTimeout
        let gate = OnceGate()
        beginWrite()
        // Unstructured tasks on purpose: they must not inherit the caller's cancellation. Both end on their own
        // (the operation when the store answers, the timer at the timeout or when cancelled below). The operation
        // goes first: a release is what the next leader waits for. At the caller's priority, not a higher one: on
        // Linux each priority has threads of its own, and a process's first task of a higher one waits for a
        // thread to be made (most processes release once, as they stop).
        Task {
            do {
                try await operation()
            } catch {
                logger.warning("failed: \(what)", metadata: ["baton.error": "\(error)"])
            }
            gate.open()
            self.endWrite()
        }
        let timer = Task {
            try? await clock.sleep(for: timeout)
            if gate.open() { logger.warning("timed out: \(what)") }
        }
        await gate.wait()
        timer.cancel()
    }

    // MARK: Writes that outlive their wait

    // A release (or a leave of the queue) whose wait timed out still runs, and lands when the store answers. An
    // acquire of this elector sent before it lands would find the term still held by this holder, and take it up
    // again as a renew of the same term, with the same token; the late release would then free the key under that
    // term, and a second leader could be elected while this one works. So an acquire waits until every release and
    // leave of this elector has been answered (each is bounded by the store's request deadline).

    /// Counts a release or leave of the queue as under way (also while it waits for the term's work).
    func beginWrite() {
        shared.withLock { $0.writesInFlight += 1 }
    }

    /// Counts a release or leave of the queue as answered; wakes the acquires waiting for the last one.
    func endWrite() {
        let waiters = shared.withLock { shared -> [CheckedContinuation<Void, Never>] in
            shared.writesInFlight -= 1
            guard shared.writesInFlight == 0 else { return [] }
            defer { shared.settleWaiters = [:] }
            return Array(shared.settleWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until no release or leave of the queue of this elector is under way, or the calling task is cancelled.
    func waitUntilWritesSettle() async {
        guard shared.withLock({ $0.writesInFlight > 0 }) else { return }
        logger.info("waiting for the store to answer the previous release before campaigning")
        let id = shared.withLock { $0.takeID() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let settled = shared.withLock { shared in
                    if shared.writesInFlight == 0 || Task.isCancelled { return true }
                    shared.settleWaiters[id] = continuation
                    return false
                }
                if settled { continuation.resume() }
            }
        } onCancel: {
            shared.withLock { $0.settleWaiters.removeValue(forKey: id) }?.resume()
        }
    }

}
