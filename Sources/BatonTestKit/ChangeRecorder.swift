import Baton
import Synchronization

/// Records what a ``LeaseStore/changes(key:)`` sequence yields, consuming it in a task of its own from `init` until
/// the sequence ends or ``cancel()``.
public final class ChangeRecorder: Sendable {
    private struct State {
        var observations: [LeaderInfo?] = []
        var finished = false
        var error: (any Error)?
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Starts consuming `changes`.
    public init(_ changes: LeaderChanges) {
        let task = Task { [self] in
            do {
                for try await info in changes {
                    self.state.withLock { $0.observations.append(info) }
                }
                self.state.withLock { $0.finished = true }
            } catch {
                self.state.withLock { state in
                    state.finished = true
                    state.error = error
                }
            }
        }
        self.task.withLock { $0 = task }
    }

    /// Every element the sequence yielded so far, in order (`nil`: no leader).
    public var observations: [LeaderInfo?] { state.withLock { $0.observations } }
    /// Whether the sequence ended, by finishing or by throwing.
    public var finished: Bool { state.withLock { $0.finished } }
    /// What the sequence threw, if it ended by throwing.
    public var error: (any Error)? { state.withLock { $0.error } }

    /// Waits until `condition` holds for the observations, checking every 5 ms, for at most `timeout`.
    /// - Returns: whether it held.
    @discardableResult
    public func wait(
        timeout: Duration = .seconds(10),
        until condition: ([LeaderInfo?]) -> Bool
    ) async throws -> Bool {
        try await eventually(timeout: timeout) { condition(observations) }
    }

    /// Waits until the sequence ends, for at most `timeout`. Returns whether it ended.
    @discardableResult
    public func waitForEnd(timeout: Duration = .seconds(10)) async throws -> Bool {
        try await eventually(timeout: timeout) { finished }
    }

    /// Stops consuming the sequence.
    public func cancel() { task.withLock { $0?.cancel() } }
}
