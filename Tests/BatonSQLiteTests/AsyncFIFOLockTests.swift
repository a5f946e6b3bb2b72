import Testing

@testable import BatonSQLite

@Suite struct AsyncFIFOLockTests {
    @Test func grantsInArrivalOrder() async throws {
        let lock = AsyncFIFOLock()
        let order = Locked<[Int]>([])
        try await lock.lock()
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<5 {
            tasks.append(
                Task {
                    try await lock.lock()
                    order.withLock { $0.append(index) }
                    lock.unlock()
                })
            // Let each task queue up before the next one starts.
            while lock.waitingCount < index + 1 { try await Task.sleep(for: .milliseconds(1)) }
        }
        lock.unlock()
        for task in tasks { try await task.value }
        #expect(order.value == [0, 1, 2, 3, 4])
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        let lock = AsyncFIFOLock()
        try await lock.lock()
        let waiter = Task { try await lock.lock() }
        while lock.waitingCount < 1 { try await Task.sleep(for: .milliseconds(1)) }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(lock.waitingCount == 0)
        lock.unlock()
        // The lock is free again: the cancelled waiter did not take it.
        try await lock.lock()
        lock.unlock()
    }

    @Test func arrivalOrderHoldsPastCancelledWaitersAndALongQueue() async throws {
        let lock = AsyncFIFOLock()
        let order = Locked<[Int]>([])
        try await lock.lock()
        var tasks: [Task<Void, any Error>] = []
        // More waiters than the queue keeps before it drops its consumed prefix, every third one cancelled.
        for index in 0..<300 {
            tasks.append(
                Task {
                    try await lock.lock()
                    order.withLock { $0.append(index) }
                    lock.unlock()
                })
            while lock.waitingCount < index + 1 - index / 3 { try await Task.sleep(for: .milliseconds(1)) }
            if index % 3 == 2 {
                tasks[index].cancel()
                while lock.waitingCount > index - index / 3 { try await Task.sleep(for: .milliseconds(1)) }
            }
        }
        lock.unlock()
        for task in tasks { _ = try? await task.value }
        #expect(order.value == (0..<300).filter { $0 % 3 != 2 })
        #expect(lock.waitingCount == 0)
        try await lock.lock()
        lock.unlock()
    }

    @Test func alreadyCancelledTaskDoesNotTakeTheLock() async throws {
        let lock = AsyncFIFOLock()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await lock.lock()
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        try await lock.lock()
        lock.unlock()
    }

    @Test func mutualExclusionUnderContention() async throws {
        let lock = AsyncFIFOLock()
        let inside = Locked(0)
        let maximum = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await lock.lock()
                    let now = inside.withLock {
                        $0 += 1
                        return $0
                    }
                    maximum.withLock { $0 = max($0, now) }
                    await Task.yield()
                    inside.withLock { $0 -= 1 }
                    lock.unlock()
                }
            }
            try await group.waitForAll()
        }
        #expect(maximum.value == 1)
    }
}
