import Baton
import Synchronization

/// Helpers shared by the checks.
enum Conformance {
    /// A name no other check or run uses: `baton-conformance-<label>-<random hex>`.
    static func unique(_ label: String) -> String { BatonTestKit.unique("baton-conformance-\(label)") }

    /// A ttl that does not run out during a check: far longer than the check takes on any store.
    static func longTTL(_ harness: any StoreHarness) -> Duration {
        max(harness.ttl * 300, .seconds(120))
    }

    /// The lease of an acquire that must have succeeded.
    static func acquired(
        _ result: AcquireResult,
        _ what: String,
        file: String = #fileID,
        line: Int = #line
    ) throws(ConformanceFailure) -> Lease {
        guard case .acquired(let lease) = result else {
            throw ConformanceFailure("\(what): expected to acquire, got \(result)", file: file, line: line)
        }
        return lease
    }

    /// The leader of an acquire that must have been refused.
    static func held(
        _ result: AcquireResult,
        _ what: String,
        file: String = #fileID,
        line: Int = #line
    ) throws(ConformanceFailure) -> LeaderInfo {
        guard case .held(let leader) = result else {
            throw ConformanceFailure("\(what): expected held(by:), got \(result)", file: file, line: line)
        }
        return leader
    }

    /// Runs `body` and requires it to throw a ``BatonError`` with `code`; returns that error.
    @discardableResult
    static func expectError<T>(
        _ code: BatonError.Code,
        _ what: String,
        file: String = #fileID,
        line: Int = #line,
        _ body: () async throws -> T
    ) async throws(ConformanceFailure) -> BatonError {
        let outcome: T
        do {
            outcome = try await body()
        } catch let error as BatonError {
            if error.code == code { return error }
            throw ConformanceFailure(
                "\(what): expected error code \(code), got \(String(reflecting: error))",
                file: file,
                line: line
            )
        } catch {
            throw ConformanceFailure(
                "\(what): expected BatonError with code \(code), got \(String(reflecting: error))",
                file: file,
                line: line
            )
        }
        throw ConformanceFailure(
            "\(what): expected error code \(code), but the call returned \(outcome)",
            file: file,
            line: line
        )
    }

    /// A short description of a leader observation.
    static func show(_ info: LeaderInfo?) -> String {
        guard let info else { return "nil (no leader)" }
        return "\(info.holder) token \(info.token) metadata \(info.metadata.map { "\"\($0)\"" } ?? "nil")"
    }
}

/// Consumes a ``LeaseStore/changes(key:)`` stream in a task of its own and hands out its observations one by
/// one, each wait bounded in real time, so that a store that never delivers fails a check instead of hanging it.
final class ChangeObserver: Sendable {
    /// What ``next(within:)`` saw.
    enum Event: Sendable {
        case value(LeaderInfo?)
        case finished((any Error)?)
        case timedOut
    }

    private struct State {
        var buffer: [LeaderInfo?] = []
        var finished = false
        var error: (any Error)?
        var waiters = Parking<Void>()
    }

    private let state = Mutex(State())
    private let consumer = TaskHandle()
    private let observation = Mutex<ChangeObservation?>(nil)
    /// Observations handed to the observer after ``stop()`` returned (an observation may stop with one delivery
    /// under way, not more).
    private let lateDeliveries = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// Starts consuming `stream`.
    init(_ stream: LeaderChanges) {
        consumer.start { [self] in
            do {
                for try await info in stream { push { $0.buffer.append(info) } }
                push { $0.finished = true }
            } catch {
                push { state in
                    state.finished = true
                    state.error = error
                }
            }
        }
    }

    /// Follows `key` through ``LeaseStore/observe(key:_:)``, the push form, instead of a sequence.
    init(observing store: LeaseStore, key: String) throws {
        let started = try store.observe(key: key) { [weak self] observed in
            guard let self else { return }
            if self.stopped.load(ordering: .acquiring) { self.lateDeliveries.add(1, ordering: .relaxed) }
            switch observed {
            case .leader(let info): self.push { $0.buffer.append(info) }
            case .ended(let error):
                self.push { state in
                    state.finished = true
                    state.error = error
                }
            }
        }
        observation.withLock { $0 = started }
    }

    /// Stops consuming; the stream's consumer task is cancelled (or the observation cancelled), which ends the
    /// subscription.
    func stop() {
        consumer.cancel()
        observation.withLock { $0 }?.cancel()
        stopped.store(true, ordering: .releasing)
    }

    /// How many observations reached the observer after ``stop()`` returned.
    var deliveredAfterStop: Int { lateDeliveries.load(ordering: .relaxed) }

    /// Observations received and not yet taken.
    var pending: Int { state.withLock { $0.buffer.count } }

    /// The next observation, the end of the stream, or ``Event/timedOut`` after `timeout` of real time.
    func next(within timeout: Duration) async -> Event {
        await withTaskGroup(of: Event?.self) { group in
            group.addTask { await self.take() }
            group.addTask {
                try? await Task.sleep(for: timeout, clock: .continuous)
                return .timedOut
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .timedOut
        }
    }

    /// The next observation or the end; nil if the task is cancelled first.
    private func take() async -> Event? {
        enum Step {
            case ready(Event)
            case wait(UInt64)
        }
        while true {
            let step = state.withLock { state -> Step in
                if !state.buffer.isEmpty { return .ready(.value(state.buffer.removeFirst())) }
                if state.finished { return .ready(.finished(state.error)) }
                return .wait(state.waiters.reserve())
            }
            let id: UInt64
            switch step {
            case .ready(let event): return event
            case .wait(let reserved): id = reserved
            }
            do {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let parked = state.withLock { state -> Bool in
                            if !state.buffer.isEmpty || state.finished {
                                _ = state.waiters.unreserve(id)
                                return false
                            }
                            return state.waiters.park(id, tag: (), continuation: continuation)
                        }
                        if !parked { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.waiters.cancel(id) }?.resume(throwing: CancellationError())
                }
            } catch {
                return nil
            }
            if Task.isCancelled { return nil }
        }
    }

    private func push(_ change: @Sendable (inout State) -> Void) {
        let waiters = state.withLock { state in
            change(&state)
            return state.waiters.takeAll()
        }
        for waiter in waiters { waiter.continuation.resume() }
    }
}

extension ChangeObserver {
    /// The next observation, which must come within the harness's ``StoreHarness/changeTimeout``.
    func expectNext(
        _ harness: any StoreHarness,
        _ expectation: String,
        file: String = #fileID,
        line: Int = #line
    ) async throws(ConformanceFailure) -> LeaderInfo? {
        switch await next(within: harness.changeTimeout) {
        case .value(let info):
            return info
        case .finished(let error):
            let reason = error.map { "with \(String(reflecting: $0))" } ?? "without an error"
            throw ConformanceFailure(
                "changes ended \(reason) while waiting for \(expectation)",
                file: file,
                line: line
            )
        case .timedOut:
            throw ConformanceFailure(
                "no observation from changes within \(harness.changeTimeout) while waiting for \(expectation)",
                file: file,
                line: line
            )
        }
    }
}
