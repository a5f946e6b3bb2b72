import Synchronization

/// A request that a ``RequestBatcher`` sends together with others: at most one per ``batchKey`` goes in one
/// batch.
@_spi(BatonStoreKit) public protocol BatchedRequest: Sendable {
    /// The request's key (for a renew, the lease's key): a batch holds at most one request per key.
    var batchKey: String { get }
}

/// Sends the requests of one store together: one request to the server does every request that arrived while
/// earlier ones were being sent (for example, the renews of thousands of terms in one statement).
///
/// A process holding thousands of leases renews thousands of terms every few seconds; one round trip each
/// would be bounded by the server's commit rate. Here a request joins a queue, and a caller that finds fewer than
/// ``maxInFlight`` batches under way sends the queue (up to ``maxBatch`` requests, one per key) as one batch,
/// then the next, until the queue is empty; every caller then returns its own answer. No task runs for it: the
/// callers send.
///
/// A batch that fails fails each request in it. A caller cancelled while its request waits in the queue leaves
/// the queue; one cancelled while its batch runs stops waiting (its request may still be done, as with a
/// timeout). A sender cancelled during its batch fails that batch's requests.
@_spi(BatonStoreKit) public final class RequestBatcher<Request: BatchedRequest>: Sendable {

    private struct Pending {
        var request: Request
        var answer: Result<Bool, any Error>?
        var waiter: CheckedContinuation<Bool, any Error>?
    }

    private struct State {
        var pending: [UInt64: Pending] = [:]
        /// The ids of requests not yet sent, oldest first.
        var queue: [UInt64] = []
        var nextID: UInt64 = 0
        var inFlight = 0
    }

    /// The most batches under way at once.
    public let maxInFlight: Int
    /// The most requests in one batch.
    public let maxBatch: Int
    private let state = Mutex(State())

    /// A batcher that has at most `maxInFlight` batches under way, each of at most `maxBatch` requests.
    public init(maxInFlight: Int = 2, maxBatch: Int = 1000) {
        precondition(maxInFlight > 0 && maxBatch > 0, "a batcher sends at least one request at a time")
        self.maxInFlight = maxInFlight
        self.maxBatch = maxBatch
    }

    /// Does `request` with the others queued, sending batches with `send` (which returns the keys of the
    /// requests that succeeded). Returns whether this one did (for a renew, false: the term is over).
    public func submit(_ request: Request, send: ([Request]) async throws -> Set<String>) async throws -> Bool {
        let id = state.withLock { state in
            state.nextID += 1
            state.pending[state.nextID] = Pending(request: request)
            state.queue.append(state.nextID)
            return state.nextID
        }
        while let batch = claimBatch() {
            let result: Result<Set<String>, any Error>
            do {
                result = .success(try await send(batch.map(\.request)))
            } catch {
                result = .failure(error)
            }
            deliver(result, to: batch.map(\.id))
        }
        return try await answer(id)
    }

    /// How many requests wait to be sent or answered.
    public var waiting: Int { state.withLock { $0.pending.count } }

    /// The next batch (oldest first, one per key), if the queue has some and a batch may start.
    private func claimBatch() -> [(id: UInt64, request: Request)]? {
        state.withLock { state in
            guard state.inFlight < maxInFlight, !state.queue.isEmpty else { return nil }
            var batch: [(id: UInt64, request: Request)] = []
            var keys = Set<String>()
            var skipped: [UInt64] = []
            var index = state.queue.startIndex
            while index < state.queue.endIndex, batch.count < maxBatch {
                let id = state.queue[index]
                index += 1
                guard let pending = state.pending[id] else { continue }
                if keys.insert(pending.request.batchKey).inserted {
                    batch.append((id, pending.request))
                } else {
                    skipped.append(id)
                }
            }
            state.queue = skipped + state.queue[index...]
            if batch.isEmpty { return nil }
            state.inFlight += 1
            return batch
        }
    }

    private func deliver(_ result: Result<Set<String>, any Error>, to ids: [UInt64]) {
        let waiters = state.withLock { state -> [(CheckedContinuation<Bool, any Error>, Result<Bool, any Error>)] in
            state.inFlight -= 1
            var waiters: [(CheckedContinuation<Bool, any Error>, Result<Bool, any Error>)] = []
            for id in ids {
                guard var pending = state.pending[id] else { continue }
                let answer = result.map { $0.contains(pending.request.batchKey) }
                if let waiter = pending.waiter {
                    state.pending[id] = nil
                    waiters.append((waiter, answer))
                } else {
                    pending.answer = answer
                    state.pending[id] = pending
                }
            }
            return waiters
        }
        for (waiter, answer) in waiters { waiter.resume(with: answer) }
    }

    /// Waits for the answer of request `id`.
    private func answer(_ id: UInt64) async throws -> Bool {
        let abort = RequestAbort.current
        return try await RequestAbort.whileWaiting {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                    let ready = state.withLock { state -> Result<Bool, any Error>? in
                        guard var pending = state.pending[id] else { return .failure(CancellationError()) }
                        if let answer = pending.answer {
                            state.pending[id] = nil
                            return answer
                        }
                        if Task.isCancelled || abort?.reason != nil {
                            state.pending[id] = nil
                            state.queue.removeAll { $0 == id }
                            return .failure(abort?.reason ?? CancellationError())
                        }
                        pending.waiter = continuation
                        state.pending[id] = pending
                        return nil
                    }
                    if let ready { continuation.resume(with: ready) }
                }
            } onCancel: {
                let waiter = state.withLock { state -> CheckedContinuation<Bool, any Error>? in
                    guard let pending = state.pending[id], let waiter = pending.waiter else { return nil }
                    state.pending[id] = nil
                    state.queue.removeAll { $0 == id }
                    return waiter
                }
                waiter?.resume(throwing: CancellationError())
            }
        } onAbort: { reason in
            let waiter = self.state.withLock { state -> CheckedContinuation<Bool, any Error>? in
                guard let pending = state.pending[id], let waiter = pending.waiter else { return nil }
                state.pending[id] = nil
                state.queue.removeAll { $0 == id }
                return waiter
            }
            waiter?.resume(throwing: reason)
        }
    }
}
