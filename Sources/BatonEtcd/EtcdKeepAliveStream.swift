@_spi(BatonStoreKit) import Baton
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
/// Keep-alives of one lease are coalesced (``KeepAliveLedger``): while one awaits its answer, callers wait for the
/// next, sent when that answer comes, so a lease that many terms share costs one message per round trip. etcd
/// answers a stream's keep-alives one by one in the order they came. A request whose callers stopped waiting
/// (their timeout passed, or they were cancelled) keeps its place until its answer comes, and that answer is
/// dropped: it must not be taken for the answer to a later keep-alive of the same lease, whose callers would
/// believe the lease refreshed at their own, later, time.
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
        let deadline = ContinuousClock.now.advanced(by: timeout)
        do {
            return try await send(lease, deadline: deadline)
        } catch is StreamEnded {
            // The stream ended under the request: once more on a new one.
            do {
                return try await send(lease, deadline: deadline)
            } catch let again as StreamEnded {
                throw again.underlying
            }
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

    /// Sends a keep-alive of `lease` (or joins the next one) and waits for its answer until `deadline` (a timer of
    /// ``Baton/HostTimers``, not a task: thousands of renews a second each wait here).
    private func send(_ lease: Int64, deadline: ContinuousClock.Instant) async throws -> Int64 {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let timer = HostTimers.shared.schedule(at: deadline) { [self] in
            let waiter = state.withLock { $0.waiting.abandon(lease: lease, id: id) }
            waiter?.resume(throwing: BatonError.timeout("keep a lease alive: etcd did not answer in time"))
        }
        defer { HostTimers.shared.cancel(timer) }
        let abort = RequestAbort.current
        return try await RequestAbort.whileWaiting {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    enum Step {
                        case write(AsyncStream<Int64>.Continuation?)
                        case wait
                        case fail(any Error)
                    }
                    let step = state.withLock { state -> Step in
                        // A store that is closing runs no new stream (and then its keep-alive would wait for nothing).
                        if state.closed || lifecycle.isStopped { return .fail(EtcdLifecycle.stopped) }
                        // Checked under the lock that the cancellation handler takes: a request cancelled before it
                        // was recorded is not sent (nothing would resume it).
                        if Task.isCancelled { return .fail(CancellationError()) }
                        if let reason = abort?.reason { return .fail(reason) }
                        // Before the deadline here, the timer has not fired yet: it takes this lock after it.
                        if ContinuousClock.now >= deadline {
                            return .fail(BatonError.timeout("keep a lease alive: etcd did not answer in time"))
                        }
                        if state.writer == nil { openStream(&state) }
                        let now = state.waiting.ask(lease: lease, id: id, stream: state.stream, waiter: continuation)
                        return now ? .write(state.writer) : .wait
                    }
                    switch step {
                    case .write(let writer): writer?.yield(lease)
                    case .wait: break
                    case .fail(let error): continuation.resume(throwing: error)
                    }
                }
            } onCancel: {
                // The request keeps its place: its answer, if it comes, is dropped.
                let waiter = state.withLock { $0.waiting.abandon(lease: lease, id: id) }
                waiter?.resume(throwing: CancellationError())
            }
        } onAbort: { reason in
            let waiter = self.state.withLock { $0.waiting.abandon(lease: lease, id: id) }
            waiter?.resume(throwing: reason)
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
                try await client.call("keep leases alive", attempts: 1, stream: true) { grpc, metadata in
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

    /// Resumes the waiters of the answered request, and sends the next request of the lease if callers wait
    /// for one.
    private func answer(_ lease: Int64, ttl: Int64, stream: Int) {
        let (waiters, writer) = state.withLock { state -> ([Continuation], AsyncStream<Int64>.Continuation?) in
            let current = state.writer == nil ? nil : state.stream
            let (waiters, sendNext) = state.waiting.answered(lease: lease, stream: stream, current: current)
            return (waiters, sendNext ? state.writer : nil)
        }
        writer?.yield(lease)
        for waiter in waiters { waiter.resume(returning: ttl) }
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
/// out on and its waiters; and per lease the callers waiting for the next request.
///
/// Keep-alives of one lease are coalesced: at most one request of a lease awaits its answer on a stream. A caller
/// that asks while one does joins the next request, which goes out when that answer comes; so every caller gets
/// the answer to a request sent after it asked (the lease then lives its TTL from after the ask), and a lease
/// shared by thousands of terms is kept alive by one message per round trip however many renew at once.
///
/// An answer goes to the oldest request of its lease on its stream: etcd answers a stream's requests in order.
/// A request whose waiters all gave up stays in line, so its late answer is dropped instead of being credited to
/// a later request of the lease.
struct KeepAliveLedger<Waiter> {
    private struct Request {
        var stream: Int
        var waiters: [Int: Waiter]
    }

    private var requests: [Int64: [Request]] = [:]
    private var next: [Int64: [Int: Waiter]] = [:]

    /// Caller `id` asks for a keep-alive of `lease`, with `stream` the stream open now. True: send a request now
    /// (the caller waits for its answer); false: the caller waits for the request sent after the answer of the
    /// one under way on `stream`.
    mutating func ask(lease: Int64, id: Int, stream: Int, waiter: Waiter) -> Bool {
        if requests[lease]?.contains(where: { $0.stream == stream }) == true {
            next[lease, default: [:]][id] = waiter
            return false
        }
        requests[lease, default: []].append(Request(stream: stream, waiters: [id: waiter]))
        return true
    }

    /// Caller `id` stops waiting; returns its waiter (nil if it was answered or gave up already). Its request
    /// keeps its place in line.
    mutating func abandon(lease: Int64, id: Int) -> Waiter? {
        if let waiter = next[lease]?.removeValue(forKey: id) {
            if next[lease]?.isEmpty == true { next[lease] = nil }
            return waiter
        }
        guard let line = requests[lease] else { return nil }
        for index in line.indices {
            if let waiter = requests[lease]?[index].waiters.removeValue(forKey: id) { return waiter }
        }
        return nil
    }

    /// An answer for `lease` came on `stream`: takes the oldest request of the lease on that stream and returns
    /// its waiters (none if they gave up, or if no request was waiting). `sendNext` is true when callers wait for
    /// the next request: it is recorded as sent on `current` (the stream open now), and the caller sends it.
    mutating func answered(lease: Int64, stream: Int, current: Int?) -> (waiters: [Waiter], sendNext: Bool) {
        guard var line = requests[lease], let index = line.firstIndex(where: { $0.stream == stream }) else {
            return ([], false)
        }
        let request = line.remove(at: index)
        requests[lease] = line.isEmpty ? nil : line
        var sendNext = false
        if let current, let waiting = next[lease], requests[lease]?.contains(where: { $0.stream == current }) != true {
            next[lease] = nil
            requests[lease, default: []].append(Request(stream: current, waiters: waiting))
            sendNext = true
        }
        return (Array(request.waiters.values), sendNext)
    }

    /// `stream` ended: takes every request sent on it and the callers waiting for a request after one of those;
    /// returns their waiters.
    mutating func ended(stream: Int) -> [Waiter] {
        var waiters: [Waiter] = []
        for (lease, line) in requests where line.contains(where: { $0.stream == stream }) {
            waiters += line.filter { $0.stream == stream }.flatMap(\.waiters.values)
            if let waiting = next.removeValue(forKey: lease) { waiters += waiting.values }
            let kept = line.filter { $0.stream != stream }
            requests[lease] = kept.isEmpty ? nil : kept
        }
        return waiters
    }

    /// Takes every request and every caller waiting for one; returns their waiters.
    mutating func removeAll() -> [Waiter] {
        defer {
            requests = [:]
            next = [:]
        }
        return requests.values.flatMap { $0.flatMap(\.waiters.values) } + next.values.flatMap(\.values)
    }

    /// The number of requests awaiting an answer (abandoned ones included), for tests.
    var count: Int { requests.values.reduce(0) { $0 + $1.count } }

    /// The number of callers waiting for the next request of `lease`, for tests.
    func waitingForNext(_ lease: Int64) -> Int { next[lease]?.count ?? 0 }
}
