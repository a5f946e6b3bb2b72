import Synchronization

/// Bounds the requests under way at once; the others wait, in the order they came, cheaply (a continuation each),
/// until a place is free, their caller is cancelled or their request is aborted (``RequestAbort``).
///
/// 10,000 electors starting together send 10,000 acquires at once. In flight, each holds its client's buffers
/// and the frames of its calls, and on one connection that many requests cost the client far more per request
/// than a few hundred do: requests outlive their timeouts, and every retry adds to the pile. With a bound,
/// requests past it wait here instead, and the store, which serves concurrent requests together, stays busy.
@_spi(BatonStoreKit) public final class RequestLimiter: Sendable {
    private typealias Waiter = CheckedContinuation<Void, any Error>

    private struct State {
        var inUse = 0
        var waiters: [Int: Waiter] = [:]
        /// The waiters' ids in arrival order, from `head` on (ids of waiters that left are skipped).
        var order: [Int] = []
        var head = 0
        var nextID = 0

        /// The oldest waiter still waiting.
        mutating func popOldest() -> Waiter? {
            while head < order.count {
                let id = order[head]
                head += 1
                if let waiter = waiters.removeValue(forKey: id) {
                    compact()
                    return waiter
                }
            }
            compact()
            return nil
        }

        private mutating func compact() {
            if head == order.count {
                order.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    /// The most requests under way at once.
    public let limit: Int
    private let state = Mutex(State())

    public init(limit: Int) {
        precondition(limit > 0, "a limiter lets at least one request through")
        self.limit = limit
    }

    /// Runs `body` once fewer than ``limit`` others run; waits (cancellably) until then.
    public func run<Result>(_ body: () async throws -> Result) async throws -> Result {
        try await enter()
        defer { leave() }
        return try await body()
    }

    /// How many requests wait, for tests.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    private func enter() async throws {
        let id = state.withLock { state -> Int? in
            if state.inUse < limit, state.waiters.isEmpty {
                state.inUse += 1
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return }
        let abort = RequestAbort.current
        try await RequestAbort.whileWaiting {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (waiter: Waiter) in
                    let ready = state.withLock { state -> Bool? in
                        if Task.isCancelled || abort?.reason != nil { return false }
                        if state.inUse < limit, state.waiters.isEmpty {
                            state.inUse += 1
                            return true
                        }
                        state.waiters[id] = waiter
                        state.order.append(id)
                        return nil
                    }
                    switch ready {
                    case true?: waiter.resume()
                    case false?: waiter.resume(throwing: abort?.reason ?? CancellationError())
                    case nil: break
                    }
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

    /// A request ended: the oldest waiter takes its place.
    private func leave() {
        let next = state.withLock { state -> Waiter? in
            if let waiter = state.popOldest() { return waiter }
            state.inUse -= 1
            return nil
        }
        next?.resume()
    }
}
