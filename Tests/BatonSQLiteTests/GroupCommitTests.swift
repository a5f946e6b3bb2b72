import Baton
import Logging
import Testing

@testable import BatonSQLite

/// A resource without a database: a list of values with one transaction and one savepoint, recording every
/// call a group commit makes.
final class ListResource: GroupCommitResource {
    struct State {
        var committed: [String] = []
        /// The transaction's values; nil outside a transaction.
        var working: [String]?
        var savepoint: [String]?
        var calls: [String] = []
        var failBegin = false
        var failCommit = false
    }

    struct Failure: Error, Equatable {
        var what: String
    }

    let state = Locked(State())

    var committed: [String] { state.value.committed }
    var calls: [String] { state.value.calls }

    /// Adds `value`, to the transaction if one is open.
    func insert(_ value: String) {
        state.withLock { state in
            if state.working != nil { state.working!.append(value) } else { state.committed.append(value) }
        }
    }

    private func call(_ name: String, _ change: (inout State) throws -> Void) throws {
        try state.withLock { state -> Result<Void, any Error> in
            state.calls.append(name)
            return Result { try change(&state) }
        }.get()
    }

    func begin() async throws {
        try call("begin") { state in
            if state.failBegin { throw Failure(what: "begin") }
            state.working = state.committed
        }
    }

    func savepoint() async throws { try call("savepoint") { $0.savepoint = $0.working } }

    func releaseSavepoint() async throws { try call("release") { $0.savepoint = nil } }

    func rollbackToSavepoint() async throws {
        try call("rollbackTo") { state in
            state.working = state.savepoint
            state.savepoint = nil
        }
    }

    func commit() async throws {
        try call("commit") { state in
            if state.failCommit { throw Failure(what: "commit") }
            state.committed = state.working ?? state.committed
            state.working = nil
        }
    }

    func rollback() async throws { try call("rollback") { $0.working = nil } }
}

@Suite struct GroupCommitTests {
    struct Closed: Error, Equatable {
        var operation: String
    }

    /// A group commit running turns on a fresh resource while `body` runs.
    private func withRunning<T: Sendable>(
        maxTurnSize: Int = 1000,
        _ body: (GroupCommit<ListResource>, ListResource) async throws -> T
    ) async throws -> T {
        let commits = GroupCommit<ListResource>(maxTurnSize: maxTurnSize, logger: Logger(label: "test"))
        let resource = ListResource()
        let runner = Task { await commits.run(on: resource) }
        defer { commits.finish { Closed(operation: $0) } }
        let value = try await body(commits, resource)
        commits.finish { Closed(operation: $0) }
        await runner.value
        return value
    }

    /// Holds the turn until the returned continuation yields, so that operations queued meanwhile share the next.
    private func holdTurn(_ commits: GroupCommit<ListResource>) async -> (
        Task<Void, any Error>, AsyncStream<Void>.Continuation
    ) {
        let (held, heldContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let blocker = Task {
            try await commits.read("hold") { _ in
                heldContinuation.yield()
                for await _ in release { break }
            }
        }
        for await _ in held { break }
        return (blocker, releaseContinuation)
    }

    private func waitForQueue(_ commits: GroupCommit<ListResource>, _ count: Int) async throws {
        while commits.queuedOperations < count { try await Task.sleep(for: .milliseconds(1)) }
    }

    @Test func writesQueuedDuringATurnShareOneTransaction() async throws {
        try await withRunning { commits, resource in
            let (blocker, release) = await holdTurn(commits)
            var writes: [Task<Void, any Error>] = []
            for (index, value) in ["a", "b", "c"].enumerated() {
                // One at a time, so that the queue's order is the order asserted.
                writes.append(Task { try await commits.write(value) { $0.insert(value) } })
                try await waitForQueue(commits, index + 1)
            }
            release.yield()
            try await blocker.value
            for write in writes { try await write.value }
            #expect(resource.committed == ["a", "b", "c"])
            let perWrite = ["savepoint", "release"]
            #expect(resource.calls == ["begin"] + perWrite + perWrite + perWrite + ["commit"])
        }
    }

    @Test func aLoneWriteNeedsNoSavepoint() async throws {
        try await withRunning { commits, resource in
            try await commits.write("alone") { $0.insert("alone") }
            #expect(resource.committed == ["alone"])
            #expect(resource.calls == ["begin", "commit"])
        }
    }

    @Test func aLoneFailingWriteRollsTheTransactionBack() async throws {
        try await withRunning { commits, resource in
            try await commits.write("kept") { $0.insert("kept") }
            await #expect(throws: ListResource.Failure(what: "write")) {
                try await commits.write("failing") { resource in
                    resource.insert("failing")
                    throw ListResource.Failure(what: "write")
                }
            }
            #expect(resource.committed == ["kept"])
            #expect(resource.calls.suffix(2) == ["begin", "rollback"])
        }
    }

    @Test func aFailingWriteIsRolledBackAlone() async throws {
        try await withRunning { commits, resource in
            let (blocker, release) = await holdTurn(commits)
            let first = Task { try await commits.write("first") { $0.insert("first") } }
            try await waitForQueue(commits, 1)
            let failing = Task {
                try await commits.write("failing") { resource in
                    resource.insert("failing")
                    throw ListResource.Failure(what: "write")
                }
            }
            try await waitForQueue(commits, 2)
            let last = Task { try await commits.write("last") { $0.insert("last") } }
            try await waitForQueue(commits, 3)
            release.yield()
            try await blocker.value
            try await first.value
            try await last.value
            await #expect(throws: ListResource.Failure(what: "write")) { try await failing.value }
            #expect(resource.committed == ["first", "last"])
            #expect(
                resource.calls.filter { $0 == "begin" || $0 == "commit" || $0 == "rollbackTo" }
                    == ["begin", "rollbackTo", "commit"])
        }
    }

    @Test func aFailedCommitFailsEveryWriteOfTheTurn() async throws {
        try await withRunning { commits, resource in
            resource.state.withLock { $0.failCommit = true }
            let (blocker, release) = await holdTurn(commits)
            let writes = ["a", "b"].map { value in Task { try await commits.write(value) { $0.insert(value) } } }
            try await waitForQueue(commits, 2)
            release.yield()
            try await blocker.value
            for write in writes {
                await #expect(throws: ListResource.Failure(what: "commit")) { try await write.value }
            }
            #expect(resource.committed == [])
            #expect(resource.calls.last == "rollback")
        }
    }

    @Test func aFailedBeginFailsEveryWriteAndRunsNone() async throws {
        try await withRunning { commits, resource in
            resource.state.withLock { $0.failBegin = true }
            let ran = Locked(false)
            await #expect(throws: ListResource.Failure(what: "begin")) {
                try await commits.write("w") { _ in ran.withLock { $0 = true } }
            }
            #expect(!ran.value)
        }
    }

    @Test func readsOfATurnRunAfterItsWritesAreCommitted() async throws {
        try await withRunning { commits, resource in
            let (blocker, release) = await holdTurn(commits)
            let read = Task { try await commits.read("read") { $0.committed } }
            try await waitForQueue(commits, 1)
            let write = Task { try await commits.write("write") { $0.insert("written") } }
            try await waitForQueue(commits, 2)
            release.yield()
            try await blocker.value
            try await write.value
            #expect(try await read.value == ["written"])
        }
    }

    @Test func aTurnTakesAtMostMaxTurnSizeOperationsOldestFirst() async throws {
        try await withRunning(maxTurnSize: 2) { commits, resource in
            let (blocker, release) = await holdTurn(commits)
            var writes: [Task<Void, any Error>] = []
            for index in 0..<5 {
                writes.append(Task { try await commits.write("\(index)") { $0.insert("\(index)") } })
                try await waitForQueue(commits, index + 1)
            }
            release.yield()
            try await blocker.value
            for write in writes { try await write.value }
            #expect(resource.committed == ["0", "1", "2", "3", "4"])
            #expect(resource.calls.filter { $0 == "commit" }.count == 3)
        }
    }

    @Test func anOperationCancelledBeforeItsTurnIsNotRun() async throws {
        try await withRunning { commits, resource in
            let (blocker, release) = await holdTurn(commits)
            let cancelled = Task { try await commits.write("gone") { $0.insert("gone") } }
            try await waitForQueue(commits, 1)
            let kept = Task { try await commits.write("kept") { $0.insert("kept") } }
            try await waitForQueue(commits, 2)
            cancelled.cancel()
            await #expect(throws: CancellationError.self) { try await cancelled.value }
            #expect(commits.queuedOperations == 1)
            release.yield()
            try await blocker.value
            try await kept.value
            #expect(resource.committed == ["kept"])
        }
    }

    /// Queues `writes` (name, atomic, body) one at a time behind a held turn, then lets the turn run them.
    private func runTurn(
        _ commits: GroupCommit<ListResource>,
        _ writes: [(String, Bool, @Sendable (ListResource) throws -> Void)]
    ) async throws -> [Result<Void, any Error>] {
        let (blocker, release) = await holdTurn(commits)
        var tasks: [Task<Void, any Error>] = []
        for (index, (name, atomic, body)) in writes.enumerated() {
            tasks.append(Task { try await commits.write(name, atomic: atomic) { try body($0) } })
            try await waitForQueue(commits, index + 1)
        }
        release.yield()
        try await blocker.value
        var results: [Result<Void, any Error>] = []
        for task in tasks { results.append(await task.result) }
        return results
    }

    @Test func atomicWritesNeedNoSavepoints() async throws {
        try await withRunning { commits, resource in
            let results = try await runTurn(
                commits,
                [
                    ("a", true, { $0.insert("a") }),
                    ("b", true, { $0.insert("b") }),
                    ("c", false, { $0.insert("c") }),
                ])
            for result in results { try result.get() }
            #expect(resource.committed == ["a", "b", "c"])
            #expect(resource.calls == ["begin", "savepoint", "release", "commit"])
        }
    }

    @Test func anAtomicWriteRefusedWithABatonErrorLeavesTheOthers() async throws {
        try await withRunning { commits, resource in
            let results = try await runTurn(
                commits,
                [
                    ("a", true, { $0.insert("a") }),
                    ("lost", true, { _ in throw BatonError.lost(key: "k") }),
                    ("b", true, { $0.insert("b") }),
                ])
            try results[0].get()
            try results[2].get()
            #expect(throws: BatonError.self) { try results[1].get() }
            #expect(resource.committed == ["a", "b"])
            #expect(resource.calls == ["begin", "commit"])
        }
    }

    @Test func anAtomicWriteWhoseStatementFailsFailsTheTurn() async throws {
        try await withRunning { commits, resource in
            let results = try await runTurn(
                commits,
                [
                    ("a", true, { $0.insert("a") }),
                    ("failing", true, { _ in throw ListResource.Failure(what: "statement") }),
                    ("b", true, { $0.insert("b") }),
                ])
            for result in results {
                #expect(throws: ListResource.Failure(what: "statement")) { try result.get() }
            }
            #expect(resource.committed == [])
            #expect(resource.calls == ["begin", "rollback"])
        }
    }

    @Test func operationsWaitForRunAndFinishEndsTheTurns() async throws {
        let commits = GroupCommit<ListResource>(logger: Logger(label: "test"))
        let resource = ListResource()
        let early = Task { try await commits.write("early") { $0.insert("early") } }
        try await waitForQueue(commits, 1)
        #expect(resource.calls == [])
        let runner = Task { await commits.run(on: resource) }
        try await early.value
        #expect(resource.committed == ["early"])

        let (blocker, release) = await holdTurn(commits)
        let waiting = Task { try await commits.write("waiting") { $0.insert("waiting") } }
        try await waitForQueue(commits, 1)
        commits.finish { Closed(operation: $0) }
        await #expect(throws: Closed(operation: "waiting")) { try await waiting.value }
        // The turn under way runs to its end; run(on:) returns after it.
        release.yield()
        try await blocker.value
        await runner.value
        await #expect(throws: Closed(operation: "late")) { try await commits.read("late") { _ in } }
        #expect(resource.committed == ["early"])
    }
}
