import Synchronization
import Testing

@_spi(BatonStoreKit) @testable import Baton

/// Requests of one store sent together, as PostgreSQL's renews and etcd's term checks are: `send` stands for the
/// round trip to the server.
@Suite struct RequestBatcherTests {
    struct Renewal: BatchedRequest {
        var key: String
        var token: Int64
        var batchKey: String { key }
    }

    /// A statement that waits until released, recording the batches it was sent.
    final class Statement: Sendable {
        let batches = Mutex<[[String]]>([])
        let gate = Mutex<[CheckedContinuation<Void, Never>]>([])
        let open = Mutex(false)

        func send(_ batch: [Renewal], renewing renewed: Set<String>) async throws -> Set<String> {
            batches.withLock { $0.append(batch.map(\.key)) }
            await withCheckedContinuation { continuation in
                let waits = open.withLock { open in
                    if !open { gate.withLock { $0.append(continuation) } }
                    return !open
                }
                if !waits { continuation.resume() }
            }
            return renewed.intersection(batch.map(\.key))
        }

        func release() {
            open.withLock { $0 = true }
            let waiters = gate.withLock { gate in
                defer { gate = [] }
                return gate
            }
            for waiter in waiters { waiter.resume() }
        }

        var sent: [[String]] { batches.withLock { $0 } }
    }

    private func renewal(_ key: String, token: Int64 = 1) -> Renewal {
        Renewal(key: key, token: token)
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        while !condition() { try await Task.sleep(for: .milliseconds(1)) }
    }

    @Test func renewsArrivingWhileAStatementRunsShareTheNext() async throws {
        let batcher = RequestBatcher<Renewal>(maxInFlight: 1)
        let statement = Statement()
        let renewed: Set<String> = ["a", "b", "c"]
        let first = Task { try await batcher.submit(renewal("a")) { try await statement.send($0, renewing: renewed) } }
        try await waitUntil { statement.sent.count == 1 }
        let later = ["b", "c", "gone"].map { key in
            Task { try await batcher.submit(renewal(key)) { try await statement.send($0, renewing: renewed) } }
        }
        try await waitUntil { batcher.waiting == 4 }
        statement.release()
        #expect(try await first.value)
        #expect(try await later[0].value)
        #expect(try await later[1].value)
        #expect(try await later[2].value == false, "a term not renewed is over")
        #expect(statement.sent.count == 2)
        #expect(statement.sent[0] == ["a"])
        #expect(Set(statement.sent[1]) == ["b", "c", "gone"])
        #expect(batcher.waiting == 0)
    }

    @Test func oneStatementHasEachKeyOnce() async throws {
        let batcher = RequestBatcher<Renewal>(maxInFlight: 1)
        let statement = Statement()
        let blocker = Task { try await batcher.submit(renewal("x")) { try await statement.send($0, renewing: ["x"]) } }
        try await waitUntil { statement.sent.count == 1 }
        let twice = [1, 2].map { token in
            Task {
                try await batcher.submit(renewal("k", token: Int64(token))) {
                    try await statement.send($0, renewing: ["k"])
                }
            }
        }
        try await waitUntil { batcher.waiting == 3 }
        statement.release()
        _ = try await blocker.value
        for renew in twice { _ = try await renew.value }
        #expect(statement.sent.dropFirst().allSatisfy { $0 == ["k"] }, "\(statement.sent)")
        #expect(statement.sent.count == 3)
    }

    @Test func aFailedStatementFailsEachOfItsRenews() async throws {
        struct Down: Error {}
        let batcher = RequestBatcher<Renewal>()
        let renews = ["a", "b"].map { key in
            Task { try await batcher.submit(renewal(key)) { _ in throw Down() } }
        }
        for renew in renews {
            await #expect(throws: Down.self) { _ = try await renew.value }
        }
        #expect(batcher.waiting == 0)
    }

    @Test func aRenewCancelledInTheQueueLeavesIt() async throws {
        let batcher = RequestBatcher<Renewal>(maxInFlight: 1)
        let statement = Statement()
        let blocker = Task { try await batcher.submit(renewal("x")) { try await statement.send($0, renewing: ["x"]) } }
        try await waitUntil { statement.sent.count == 1 }
        let cancelled = Task {
            try await batcher.submit(renewal("gone")) { try await statement.send($0, renewing: ["gone"]) }
        }
        try await waitUntil { batcher.waiting == 2 }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { _ = try await cancelled.value }
        statement.release()
        #expect(try await blocker.value)
        #expect(statement.sent == [["x"]], "the cancelled renew was never sent")
        #expect(batcher.waiting == 0)
    }
}
