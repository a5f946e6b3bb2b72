import Baton
import GRPCCore
import SwiftProtobuf
import Synchronization

/// One `LeaseKeepAlive` stream per store, shared by every keep-alive of every lease: a keep-alive is one message
/// on an open stream, answered by one message with the lease's TTL (0 when etcd no longer has the lease).
///
/// The stream opens on first use and is opened again after it ends. etcd (or a proxy, or the connection) can end
/// a stream at any time; a keep-alive whose stream ended before its answer came is sent again on a new stream,
/// once (a keep-alive is safe to repeat), within its timeout. Only a second failure reaches the caller.
final class EtcdKeepAliveStream: Sendable {
    private typealias Waiter = (id: Int, stream: Int, continuation: CheckedContinuation<Int64, any Error>)

    private struct State {
        var writer: AsyncStream<Int64>.Continuation?
        /// Counts the streams opened; a waiter remembers the stream its request went out on.
        var stream = 0
        var waiting: [Int64: [Waiter]] = [:]
        var nextID = 0
        var task: Task<Void, Never>?
        var closed = false
    }

    /// The failure of a stream that ended with requests unanswered.
    private struct StreamEnded: Error {
        let underlying: any Error
    }

    private let client: EtcdClient
    private let state = Mutex(State())

    init(client: EtcdClient) {
        self.client = client
    }

    /// Refreshes `lease`; returns the TTL etcd answered (0: the lease is gone). Fails with `timeout` after
    /// `timeout`, and with the stream's error if the stream fails first.
    func keepAlive(_ lease: Int64, timeout: Duration) async throws -> Int64 {
        try await withThrowingTaskGroup(of: Int64.self) { group in
            group.addTask {
                do {
                    return try await self.send(lease)
                } catch is StreamEnded {
                    // The stream ended under the request: once more on a new one.
                    do {
                        return try await self.send(lease)
                    } catch let again as StreamEnded {
                        throw again.underlying
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw BatonError.timeout("keep a lease alive: etcd did not answer in time")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Ends the stream; later keep-alives fail with `storeUnavailable`.
    func close() {
        let (task, waiting) = state.withLock { state in
            state.closed = true
            state.writer?.finish()
            state.writer = nil
            defer { state.waiting = [:] }
            return (state.task, state.waiting.values.flatMap { $0 })
        }
        task?.cancel()
        for waiter in waiting {
            waiter.continuation.resume(throwing: BatonError.storeUnavailable("the etcd store is closed"))
        }
    }

    private func send(_ lease: Int64) async throws -> Int64 {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let writer = state.withLock { state -> AsyncStream<Int64>.Continuation? in
                    if state.closed { return nil }
                    if state.writer == nil { openStream(&state) }
                    state.waiting[lease, default: []].append((id, state.stream, continuation))
                    return state.writer
                }
                guard let writer else {
                    continuation.resume(throwing: BatonError.storeUnavailable("the etcd store is closed"))
                    return
                }
                writer.yield(lease)
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiting[lease]?.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting[lease]?.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Opens the stream (under the lock): requests written to `state.writer` go out as they come; answers
    /// resume the oldest waiter of their lease.
    private func openStream(_ state: inout State) {
        let (requests, writer) = AsyncStream<Int64>.makeStream()
        state.stream += 1
        state.writer = writer
        let stream = state.stream
        let client = self.client
        // The task holds the stream object until the stream ends; `close()` ends it.
        state.task = Task { [self] in
            var options = client.options()
            options.timeout = nil
            let failure: any Error
            do {
                // One attempt: the request sequence can be read only once; a failed stream is opened again by
                // the next keep-alive.
                try await client.call("keep leases alive", attempts: 1) { grpc, metadata in
                    try await Etcdserverpb_Lease.Client(wrapping: grpc).leaseKeepAlive(
                        metadata: metadata,
                        options: options,
                        requestProducer: { output in
                            for await lease in requests { try await output.write(.with { $0.id = lease }) }
                        },
                        onResponse: { response in
                            for try await answer in response.messages {
                                self.answer(answer.id, ttl: answer.ttl, stream: stream)
                            }
                        }
                    )
                }
                failure = BatonError.storeUnavailable("keep a lease alive: etcd ended the keep-alive stream")
            } catch {
                failure = error
            }
            self.fail(stream, failure)
        }
    }

    private func answer(_ lease: Int64, ttl: Int64, stream: Int) {
        let waiter = state.withLock { state -> Waiter? in
            guard var waiters = state.waiting[lease],
                let index = waiters.firstIndex(where: { $0.stream == stream })
            else { return nil }
            let first = waiters.remove(at: index)
            state.waiting[lease] = waiters.isEmpty ? nil : waiters
            return first
        }
        waiter?.continuation.resume(returning: ttl)
    }

    /// Fails the waiters whose requests went out on the stream that ended (so they are sent again on a new one),
    /// and lets the next keep-alive open a new stream.
    private func fail(_ stream: Int, _ error: any Error) {
        let ended = state.withLock { state -> [Waiter] in
            if state.stream == stream {
                state.writer?.finish()
                state.writer = nil
            }
            var ended: [Waiter] = []
            for (lease, waiters) in state.waiting {
                let (gone, kept) = (waiters.filter { $0.stream == stream }, waiters.filter { $0.stream != stream })
                ended += gone
                state.waiting[lease] = kept.isEmpty ? nil : kept
            }
            return ended
        }
        for waiter in ended { waiter.continuation.resume(throwing: StreamEnded(underlying: error)) }
    }
}
