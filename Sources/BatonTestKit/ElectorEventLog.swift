import Baton
import Synchronization

/// Records an elector's events in a task of its own, and hands them out in order to ``wait(within:until:)``.
public final class ElectorEventLog: Sendable {
    private struct State {
        var events: [ElectorEvent] = []
        var cursor = 0
    }

    private let state = Mutex(State())
    private let consumer = TaskHandle()

    /// Starts recording `events` (for example ``LeaderElector/events``).
    public init(_ events: AsyncStream<ElectorEvent>) {
        consumer.start { [self] in
            for await event in events { state.withLock { $0.events.append(event) } }
        }
    }

    /// Stops recording.
    public func stop() { consumer.cancel() }

    /// Every event recorded so far.
    public var events: [ElectorEvent] { state.withLock { $0.events } }

    /// The first event after the ones already handed out that `matches`, skipping the others; nil if none
    /// comes within `timeout` of real time.
    public func wait(
        within timeout: Duration,
        until matches: @Sendable (ElectorEvent) -> Bool
    ) async throws -> ElectorEvent? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let found = state.withLock { state -> ElectorEvent? in
                while state.cursor < state.events.count {
                    let event = state.events[state.cursor]
                    state.cursor += 1
                    if matches(event) { return event }
                }
                return nil
            }
            if let found { return found }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
