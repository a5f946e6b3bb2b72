@_spi(BatonStoreKit) import Baton
import Synchronization
import Testing

/// The bound on a store's requests under way: at most `limit` run, the rest wait in arrival order, and a
/// waiter that is cancelled leaves the line.
struct RequestLimiterTests {
    /// A request that runs until the test lets it end.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        func wait() async {
            await withCheckedContinuation { continuation in
                let open = state.withLock { state in
                    if !state.open { state.waiters.append(continuation) }
                    return state.open
                }
                if open { continuation.resume() }
            }
        }

        func open() {
            let waiters = state.withLock { state in
                state.open = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// What the requests saw.
    final class Record: Sendable {
        let running = Mutex(0)
        let most = Mutex(0)
        let order = Mutex<[Int]>([])
        let ran = Mutex<[String]>([])
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < end else {
                Issue.record("the condition did not hold within 10 s")
                return
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test(arguments: [1, 2]) func requestsPastTheLimitWaitAndRunInArrivalOrder(limit: Int) async throws {
        let limiter = RequestLimiter(limit: limit)
        let gate = Gate()
        let record = Record()
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<6 {
            tasks.append(
                Task {
                    try await limiter.run {
                        let now = record.running.withLock { running in
                            running += 1
                            return running
                        }
                        record.most.withLock { $0 = max($0, now) }
                        record.order.withLock { $0.append(index) }
                        await gate.wait()
                        record.running.withLock { $0 -= 1 }
                    }
                })
            // Each arrives after the one before it is running or waiting.
            try await waitUntil { record.order.withLock { $0.count } + limiter.waiting == index + 1 }
        }
        #expect(record.order.withLock { $0 } == Array(0..<limit), "\(limit) run, the others wait")
        #expect(limiter.waiting == 6 - limit)
        gate.open()
        for task in tasks { try await task.value }
        #expect(record.most.withLock { $0 } == limit, "never more than the limit at once")
        if limit == 1 {
            // One at a time, the order they run in is the order they were let in. (With more, two let in together
            // may start in either order.)
            #expect(record.order.withLock { $0 } == [0, 1, 2, 3, 4, 5], "waiters run in the order they came")
        }
    }

    @Test func aCancelledWaiterLeavesTheLine() async throws {
        let limiter = RequestLimiter(limit: 1)
        let gate = Gate()
        let record = Record()
        let first = Task { try await limiter.run { await gate.wait() } }
        try await waitUntil { limiter.waiting == 0 }
        let cancelled = Task { try await limiter.run { record.ran.withLock { $0.append("cancelled") } } }
        try await waitUntil { limiter.waiting == 1 }
        let last = Task { try await limiter.run { record.ran.withLock { $0.append("last") } } }
        try await waitUntil { limiter.waiting == 2 }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(limiter.waiting == 1)
        gate.open()
        try await first.value
        try await last.value
        #expect(record.ran.withLock { $0 } == ["last"], "the cancelled request never ran; the next one took its turn")
    }
}
