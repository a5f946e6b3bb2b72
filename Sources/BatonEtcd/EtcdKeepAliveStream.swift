import Baton
import GRPCCore
import SwiftProtobuf
import Synchronization

/// One `LeaseKeepAlive` stream per store, shared by every keep-alive of every lease: a keep-alive is one message
/// on an open stream, answered by one message with the lease's TTL (0 when etcd no longer has the lease).
///
/// The stream opens with the first keep-alive, as a child task of the store's `run()`, and is opened again after
/// it ends. etcd (or a proxy, or the connection) can end a stream at any time; a keep-alive whose stream ended
/// before its answer came is sent again on a new stream, once (a keep-alive is safe to repeat), within its
/// timeout. Only a second failure reaches the caller.
///
/// etcd answers a stream's keep-alives one by one in the order they came, so the n-th answer for a lease on a
/// stream is the answer to the n-th request for it there (``KeepAliveLedger``). A request whose caller stopped
/// waiting (its timeout passed, or it was cancelled) keeps its place until its answer comes, and that answer is
/// dropped: it must not be taken for the answer to a later keep-alive of the same lease, whose caller would
/// believe the lease refreshed at its own, later, send time.
final class EtcdKeepAliveStream: Sendable {
    private typealias Continuation = CheckedContinuation<Int64, any Error>

    private struct State {
        var writer: AsyncStream<Int64>.Continuation?
        /// Counts the streams opened; a request remembers the stream it went out on.
        var stream = 0
        var waiting = KeepAliveLedger<Continuation>()
        var nextID = 0
        var closed = false
    }

    /// The failure of a stream that ended with requests unanswered.
    private struct StreamEnded: Error {
        let underlying: any Error
    }

    private let client: EtcdClient
    private let lifecycle: EtcdLifecycle
    private let state = Mutex(State())

    /// A stream over `client`, run (once opened) as work of `lifecycle`: a child task of the store's `run()`.
    init(client: EtcdClient, lifecycle: EtcdLifecycle) {
        self.client = client
        self.lifecycle = lifecycle
    }

    /// Refreshes `lease`; returns the TTL etcd answered (0: the lease is gone). Fails with `timeout` after
    /// `timeout` (the time an answer may take on the network, not a decision of the store's: real time), and
    /// with the stream's error if the stream fails first.
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

    /// Ends the stream (its request side finishes, which ends the call); later keep-alives fail with
    /// `storeUnavailable`.
    func close() {
        let waiting = state.withLock { state in
            state.closed = true
            state.writer?.finish()
            state.writer = nil
            return state.waiting.removeAll()
        }
        for waiter in waiting {
            waiter.resume(throwing: BatonError.storeUnavailable("the etcd store is closed"))
        }
    }

    private func send(_ lease: Int64) async throws -> Int64 {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                enum Step {
                    case write(AsyncStream<Int64>.Continuation?)
                    case fail(any Error)
                }
                let step = state.withLock { state -> Step in
                    // A store that is closing runs no new stream (and then its keep-alive would wait for nothing).
                    if state.closed || lifecycle.isStopped { return .fail(EtcdLifecycle.stopped) }
                    // Checked under the lock that the cancellation handler takes: a request cancelled before it
                    // was recorded is not sent (nothing would resume it).
                    if Task.isCancelled { return .fail(CancellationError()) }
                    if state.writer == nil { openStream(&state) }
                    state.waiting.sent(lease: lease, id: id, stream: state.stream, waiter: continuation)
                    return .write(state.writer)
                }
                switch step {
                case .write(let writer): writer?.yield(lease)
                case .fail(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            // The request keeps its place: its answer, if it comes, is dropped.
            let waiter = state.withLock { $0.waiting.abandon(lease: lease, id: id) }
            waiter?.resume(throwing: CancellationError())
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
        // The job holds the stream object until the stream ends; `close()` ends it, and so does the end of the
        // store's `run()`, whose child task it is.
        lifecycle.spawn { [self] in
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
        let waiter = state.withLock { $0.waiting.answered(lease: lease, stream: stream) }
        waiter?.resume(returning: ttl)
    }

    /// Fails the waiters whose requests went out on the stream that ended (so they are sent again on a new one),
    /// and lets the next keep-alive open a new stream.
    private func fail(_ stream: Int, _ error: any Error) {
        let ended = state.withLock { state -> [Continuation] in
            if state.stream == stream {
                state.writer?.finish()
                state.writer = nil
            }
            return state.waiting.ended(stream: stream)
        }
        for waiter in ended { waiter.resume(throwing: StreamEnded(underlying: error)) }
    }
}

/// The keep-alive requests awaiting answers, per lease in the order they were sent, each with the stream it went
/// out on and its waiter (nil once the waiter stopped waiting).
///
/// An answer goes to the oldest request of its lease on its stream: etcd answers a stream's requests in order.
/// A request whose waiter gave up stays in line, so its late answer is dropped instead of being credited to the
/// next request of the lease.
struct KeepAliveLedger<Waiter> {
    private struct Request {
        var id: Int
        var stream: Int
        var waiter: Waiter?
    }

    private var requests: [Int64: [Request]] = [:]

    /// Records a request sent for `lease` on `stream`.
    mutating func sent(lease: Int64, id: Int, stream: Int, waiter: Waiter) {
        requests[lease, default: []].append(Request(id: id, stream: stream, waiter: waiter))
    }

    /// The waiter of request `id` stops waiting; returns it (nil if it was answered or abandoned already). The
    /// request keeps its place in line.
    mutating func abandon(lease: Int64, id: Int) -> Waiter? {
        guard let index = requests[lease]?.firstIndex(where: { $0.id == id }) else { return nil }
        defer { requests[lease]?[index].waiter = nil }
        return requests[lease]?[index].waiter
    }

    /// An answer for `lease` came on `stream`: takes the oldest request of the lease on that stream and returns
    /// its waiter, or nil if that request was abandoned (or none was waiting).
    mutating func answered(lease: Int64, stream: Int) -> Waiter? {
        guard var line = requests[lease], let index = line.firstIndex(where: { $0.stream == stream }) else {
            return nil
        }
        let request = line.remove(at: index)
        requests[lease] = line.isEmpty ? nil : line
        return request.waiter
    }

    /// `stream` ended: takes every request sent on it; returns the waiters still waiting.
    mutating func ended(stream: Int) -> [Waiter] {
        var waiters: [Waiter] = []
        for (lease, line) in requests {
            waiters += line.filter { $0.stream == stream }.compactMap(\.waiter)
            let kept = line.filter { $0.stream != stream }
            requests[lease] = kept.isEmpty ? nil : kept
        }
        return waiters
    }

    /// Takes every request; returns the waiters still waiting.
    mutating func removeAll() -> [Waiter] {
        defer { requests = [:] }
        return requests.values.flatMap { $0.compactMap(\.waiter) }
    }

    /// The number of requests awaiting an answer (abandoned ones included), for tests.
    var count: Int { requests.values.reduce(0) { $0 + $1.count } }
}
