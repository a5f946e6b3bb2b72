import Synchronization

/// Sends the renews of one store together: one statement renews every term whose renew arrived while earlier
/// ones were being sent.
///
/// A process holding thousands of leases renews thousands of terms every few seconds; one transaction each
/// would be bounded by the server's commit rate. Here a renew joins a queue, and a caller that finds fewer than
/// ``maxInFlight`` statements under way sends the queue (up to ``maxBatch`` terms, one per key) in one statement,
/// then the next, until the queue is empty; every caller then returns its own answer. No task runs for it: the
/// callers send.
///
/// A statement that fails fails each renew in it. A caller cancelled while its renew waits in the queue leaves
/// the queue; one cancelled while its statement runs stops waiting (its renew may still be done, as with a
/// timeout). A sender cancelled during its statement fails that statement's renews.
final class RenewalBatcher: Sendable {
    /// One renew: the term, its new ttl and metadata.
    struct Renewal: Sendable {
        var key: String
        var holder: String
        var token: Int64
        var ttlMilliseconds: Int64
        var metadata: String?
    }

    private struct Pending {
        var renewal: Renewal
        var answer: Result<Bool, any Error>?
        var waiter: CheckedContinuation<Bool, any Error>?
    }

    private struct State {
        var pending: [UInt64: Pending] = [:]
        /// The ids of renews not yet sent, oldest first.
        var queue: [UInt64] = []
        var nextID: UInt64 = 0
        var inFlight = 0
    }

    /// The most statements under way at once.
    let maxInFlight: Int
    /// The most terms in one statement.
    let maxBatch: Int
    private let state = Mutex(State())

    init(maxInFlight: Int = 2, maxBatch: Int = 1000) {
        self.maxInFlight = maxInFlight
        self.maxBatch = maxBatch
    }

    /// Renews `renewal` with the others queued, sending statements with `send` (which returns the keys it
    /// renewed). Returns whether the term was renewed (false: it is over).
    func renew(_ renewal: Renewal, send: ([Renewal]) async throws -> Set<String>) async throws -> Bool {
        let id = state.withLock { state in
            state.nextID += 1
            state.pending[state.nextID] = Pending(renewal: renewal)
            state.queue.append(state.nextID)
            return state.nextID
        }
        while let batch = claimBatch() {
            let result: Result<Set<String>, any Error>
            do {
                result = .success(try await send(batch.map(\.renewal)))
            } catch {
                result = .failure(error)
            }
            deliver(result, to: batch.map(\.id))
        }
        return try await answer(id)
    }

    /// How many renews wait to be sent or answered.
    var waiting: Int { state.withLock { $0.pending.count } }

    /// The next statement's renews (oldest first, one per key), if the queue has some and a statement may start.
    private func claimBatch() -> [(id: UInt64, renewal: Renewal)]? {
        state.withLock { state in
            guard state.inFlight < maxInFlight, !state.queue.isEmpty else { return nil }
            var batch: [(id: UInt64, renewal: Renewal)] = []
            var keys = Set<String>()
            var left: [UInt64] = []
            for id in state.queue {
                guard let pending = state.pending[id] else { continue }
                if batch.count < maxBatch, keys.insert(pending.renewal.key).inserted {
                    batch.append((id, pending.renewal))
                } else {
                    left.append(id)
                }
            }
            state.queue = left
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
                let answer = result.map { $0.contains(pending.renewal.key) }
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

    /// Waits for the answer of renew `id`.
    private func answer(_ id: UInt64) async throws -> Bool {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                let ready = state.withLock { state -> Result<Bool, any Error>? in
                    guard var pending = state.pending[id] else { return .failure(CancellationError()) }
                    if let answer = pending.answer {
                        state.pending[id] = nil
                        return answer
                    }
                    if Task.isCancelled {
                        state.pending[id] = nil
                        state.queue.removeAll { $0 == id }
                        return .failure(CancellationError())
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
    }
}
