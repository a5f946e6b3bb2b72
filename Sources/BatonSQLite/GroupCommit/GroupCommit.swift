@_spi(BatonStoreKit) import Baton
import Logging
import Synchronization

/// Runs the operations that concurrent tasks of one process make on a ``GroupCommitResource`` in turns, with one
/// transaction, and so one commit, for all the writes of a turn.
///
/// Operations that arrive while a turn runs wait for the next, which takes them all (up to `maxTurnSize`, oldest
/// first). It runs their writes in one transaction, each inside a savepoint of its own (a lone write needs none:
/// rolling the transaction back undoes it alone), answers them once
/// committed, and then runs the reads. A write that throws is rolled back to its savepoint and leaves the others
/// alone; a transaction that cannot begin or commit fails all its writes (none of them was done). One commit
/// serves every write of the turn: with thousands of writers in one process, the resource's commit rate does not
/// bound them, and a queue of single reads ahead of the writes does not delay them.
///
/// Turns run only inside ``run(on:)``, on one task; operations queued before it starts wait for it. Waiting for
/// a turn can be cancelled (the operation is then not run and throws `CancellationError`); once its turn has
/// come, an operation runs to its end and its answer is returned. After ``finish(_:)``, the turn already running
/// ends, and every waiting and later operation throws the error `finish` was given.
final class GroupCommit<Resource: GroupCommitResource>: Sendable {
    /// An operation waiting for its turn.
    private struct Pending: Sendable {
        var id: UInt64
        var operation: String
        var isWrite: Bool
        /// A write that needs no savepoint of its own (see ``write(_:atomic:_:)``).
        var isAtomic = false
        var body: @Sendable (Resource) async throws -> any Sendable
        var continuation: TurnAnswer
    }

    private struct State {
        /// Operations waiting for the next turn, by id (ids rise in arrival order).
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 0
        /// The runner, parked until an operation arrives or the group commit finishes.
        var idleRunner: CheckedContinuation<Void, Never>?
        /// Set by ``finish(_:)``: the error of every operation from then on, given the operation's name.
        var finished: (@Sendable (String) -> any Error)?
    }

    private let state = Mutex(State())
    private let maxTurnSize: Int
    private let logger: Logger

    /// - Parameters:
    ///   - maxTurnSize: the most operations in one turn, so that one transaction does not hold the resource
    ///     (which others may wait for) for long.
    ///   - logger: where a failed rollback is reported.
    init(maxTurnSize: Int = 1000, logger: Logger) {
        precondition(maxTurnSize > 0, "a turn needs room for one operation")
        self.maxTurnSize = maxTurnSize
        self.logger = logger
    }

    /// How many operations wait for their turn now.
    var queuedOperations: Int { state.withLock { $0.pending.count } }

    /// Runs `body` as one write of the next turn: in the turn's transaction, in a savepoint of its own, answered
    /// once the transaction is committed.
    /// - Throws: what `body` throws (its write is then undone), what the transaction's begin or commit threw
    ///   (nothing of the turn was kept), `CancellationError` if cancelled before the turn came, or the error of
    ///   ``finish(_:)``.
    ///
    /// An `atomic` write runs without a savepoint, which saves two statements per write. Its body must write
    /// with one statement at most and throw a ``BatonError`` only when it wrote nothing; any other error it throws
    /// (a failed statement) fails the whole turn, as a failed savepoint would.
    func write<T: Sendable>(
        _ operation: String,
        atomic: Bool = false,
        _ body: @escaping @Sendable (Resource) async throws -> T
    ) async throws -> T {
        try await enqueue(operation, isWrite: true, isAtomic: atomic, body)
    }

    /// Runs `body` as a read of the next turn, after the turn's writes are committed, outside any transaction.
    /// - Throws: what `body` throws, `CancellationError` if cancelled before the turn came, or the error of
    ///   ``finish(_:)``.
    func read<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Resource) async throws -> T)
        async throws -> T
    {
        try await enqueue(operation, isWrite: false, body)
    }

    /// Runs turns on `resource` until ``finish(_:)`` is called. Returns when the last turn has ended, so the
    /// resource may be closed then.
    ///
    /// It does not stop on cancellation of its task: call ``finish(_:)`` for that (for example from a
    /// cancellation handler), so that a turn is never cut short.
    func run(on resource: Resource) async {
        while let turn = await nextTurn() {
            await runTurn(turn, on: resource)
        }
    }

    /// Ends the turns: the turn running now ends, every waiting and later operation throws `error(operation)`,
    /// and ``run(on:)`` returns (or returns at once when called later). Only the first call counts.
    func finish(_ error: @escaping @Sendable (_ operation: String) -> any Error) {
        let (left, runner) = state.withLock { state -> ([Pending], CheckedContinuation<Void, Never>?) in
            guard state.finished == nil else { return ([], nil) }
            state.finished = error
            defer {
                state.pending = [:]
                state.idleRunner = nil
            }
            return (Array(state.pending.values), state.idleRunner)
        }
        for operation in left.sorted(by: { $0.id < $1.id }) {
            operation.continuation.resume(throwing: error(operation.operation))
        }
        runner?.resume()
    }

    // MARK: Queue

    private func enqueue<T: Sendable>(
        _ operation: String,
        isWrite: Bool,
        isAtomic: Bool = false,
        _ body: @escaping @Sendable (Resource) async throws -> T
    ) async throws -> T {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let answer = TurnAnswer()
        let value = try await withTaskCancellationHandler {
            try await RequestAbort.whileWaiting {
                try await withCheckedThrowingContinuation {
                    (continuation: CheckedContinuation<any Sendable, any Error>) in
                    answer.set(continuation)
                    let outcome = state.withLock { state -> QueueOutcome in
                        // The cancellation flag is set before the handler runs, and the handler takes this mutex:
                        // either it ran already (and found nothing to remove), so the flag is visible here, or it
                        // will run later and find this operation waiting.
                        if Task.isCancelled { return .cancelled }
                        if let finished = state.finished { return .finished(finished(operation)) }
                        state.pending[id] = Pending(
                            id: id,
                            operation: operation,
                            isWrite: isWrite,
                            isAtomic: isAtomic,
                            body: { resource in try await body(resource) },
                            continuation: answer
                        )
                        defer { state.idleRunner = nil }
                        return .queued(state.idleRunner)
                    }
                    switch outcome {
                    case .queued(let runner): runner?.resume()
                    case .cancelled: answer.resume(throwing: CancellationError())
                    case .finished(let error): answer.resume(throwing: error)
                    }
                }
            } onAbort: { reason in
                // A request run in its caller's task ends at its deadline: if it still waits for its turn it is
                // taken out of the queue; if its turn has come, the turn goes on and its answer is dropped. A
                // cancelled caller still waits for a turn that has come (its answer says what was done).
                let queued = self.state.withLock { $0.pending.removeValue(forKey: id) } != nil
                if queued || !(reason is CancellationError) { answer.resume(throwing: reason) }
            }
        } onCancel: {
            state.withLock { $0.pending.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
        // `body` returned a T: the value is the one it returned.
        return value as! T
    }

    /// The operations of the next turn, oldest first, waiting for one to arrive; nil once finished.
    private func nextTurn() async -> [Pending]? {
        while true {
            let next = state.withLock { state -> NextTurn<Pending> in
                if state.finished != nil { return .finished }
                let ids = state.pending.keys.sorted().prefix(maxTurnSize)
                if ids.isEmpty { return .wait }
                return .turn(ids.compactMap { state.pending.removeValue(forKey: $0) })
            }
            switch next {
            case .turn(let turn): return turn
            case .finished: return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.finished != nil || !state.pending.isEmpty { return true }
                        state.idleRunner = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    // MARK: Turns

    private func runTurn(_ turn: [Pending], on resource: Resource) async {
        let writes = turn.filter(\.isWrite)
        if !writes.isEmpty {
            for (write, answer) in zip(writes, await commit(writes, on: resource)) {
                write.continuation.resume(with: answer)
            }
        }
        for read in turn where !read.isWrite {
            do {
                read.continuation.resume(returning: try await read.body(resource))
            } catch {
                read.continuation.resume(throwing: error)
            }
        }
    }

    /// Runs `writes` in one transaction and returns each one's answer, in order.
    private func commit(_ writes: [Pending], on resource: Resource) async -> [Result<any Sendable, any Error>] {
        do {
            try await resource.begin()
        } catch {
            return writes.map { _ in .failure(error) }
        }
        if writes.count == 1 { return [await commitAlone(writes[0], on: resource)] }
        var answers: [Result<any Sendable, any Error>] = []
        answers.reserveCapacity(writes.count)
        do {
            for write in writes {
                if write.isAtomic {
                    do {
                        answers.append(.success(try await write.body(resource)))
                    } catch let error as BatonError {
                        // It wrote nothing: the others stand.
                        answers.append(.failure(error))
                    }
                    continue
                }
                try await resource.savepoint()
                do {
                    let value = try await write.body(resource)
                    try await resource.releaseSavepoint()
                    answers.append(.success(value))
                } catch {
                    try await resource.rollbackToSavepoint()
                    answers.append(.failure(error))
                }
            }
            try await resource.commit()
            return answers
        } catch {
            // A savepoint or the commit failed: nothing of the transaction is kept.
            do {
                try await resource.rollback()
            } catch let rollbackError {
                logger.warning(
                    "baton: rollback failed",
                    metadata: ["operation": "\(writes[0].operation)", "error": "\(rollbackError)"]
                )
            }
            return writes.map { _ in .failure(error) }
        }
    }

    /// Runs the one write of a turn in the transaction begun for it, without a savepoint: rolling the
    /// transaction back undoes that write alone.
    private func commitAlone(_ write: Pending, on resource: Resource) async -> Result<any Sendable, any Error> {
        let value: any Sendable
        do {
            value = try await write.body(resource)
        } catch {
            do {
                try await resource.rollback()
            } catch let rollbackError {
                logger.warning(
                    "baton: rollback failed",
                    metadata: ["operation": "\(write.operation)", "error": "\(rollbackError)"]
                )
            }
            return .failure(error)
        }
        do {
            try await resource.commit()
            return .success(value)
        } catch {
            try? await resource.rollback()
            return .failure(error)
        }
    }
}

/// What became of an operation handed to a ``GroupCommit``.
private enum QueueOutcome {
    /// Queued; the runner to wake, if it was idle.
    case queued(CheckedContinuation<Void, Never>?)
    case cancelled
    case finished(any Error)
}

/// What a ``GroupCommit``'s runner does next.
private enum NextTurn<Operation> {
    case turn([Operation])
    case finished
    case wait
}

/// Where the answer of one operation goes: resumed once, by its turn, by ``GroupCommit/finish(_:)``, or by the
/// end of its request (whichever comes first; the later ones are dropped).
final class TurnAnswer: Sendable {
    private enum State {
        case unset
        case waiting(CheckedContinuation<any Sendable, any Error>)
        /// Answered before the continuation was set: it is resumed with this when set.
        case early(Result<any Sendable, any Error>)
        case answered
    }

    private let state = Mutex(State.unset)

    func set(_ continuation: CheckedContinuation<any Sendable, any Error>) {
        let early = state.withLock { state -> Result<any Sendable, any Error>? in
            guard case .early(let result) = state else {
                state = .waiting(continuation)
                return nil
            }
            state = .answered
            return result
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<any Sendable, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<any Sendable, any Error>? in
            switch state {
            case .unset:
                state = .early(result)
                return nil
            case .waiting(let continuation):
                state = .answered
                return continuation
            case .early, .answered:
                return nil
            }
        }
        waiter?.resume(with: result)
    }

    func resume(returning value: any Sendable) { resume(with: .success(value)) }

    func resume(throwing error: any Error) { resume(with: .failure(error)) }
}
