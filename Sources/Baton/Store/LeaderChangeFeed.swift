import Synchronization

/// Builds a store's ``LeaseStore/changes(key:)`` and ``LeaseStore/observe(key:_:)`` from two primitives: a read
/// of the current leader, and a subscription to wake-up signals that say "something may have changed".
///
/// The feed reads once at the start and hands on the result, then reads again on every signal, when the current
/// term's remaining time runs out (so an expiry is seen without a signal), and every `pollInterval` if one is
/// given (for stores without push, or as a safety net). It hands on a leader only when it differs from the last
/// one handed on (holder, token or metadata). A failed read ends the feed with that error; so does the end of
/// the signals (the store closed) once a last read fails.
///
/// No task waits while nothing happens: a task runs only while the feed reads (one read at a time; signals that
/// come meanwhile cause one more read), plus one that sleeps until the next timed read, if there is one. Cancelling
/// the observation (or ending the sequence) stops the feed, its subscription and its tasks.
@_spi(BatonStoreKit) public enum LeaderChangeFeed {
    /// Makes the sequence. Subscribe `signals` (``ChangeSignals/subscribe(_:)``) before calling this, so that no
    /// change is missed between subscribing and the first read.
    public static func make(
        clock: BatonClock,
        pollInterval: Duration?,
        signals: ChangeSignals.Subscription,
        read: @escaping @Sendable () async throws -> LeaderInfo?
    ) -> LeaderChanges {
        make(clock: clock, signals: signals, pollInterval: { _ in pollInterval }, read: read)
    }

    /// Makes the sequence, polling at an interval chosen after each read from what it read (for example a
    /// fraction of the current term's ttl); nil polls not at all after that read.
    public static func make(
        clock: BatonClock,
        signals: ChangeSignals.Subscription,
        pollInterval: @escaping @Sendable (LeaderInfo?) -> Duration?,
        read: @escaping @Sendable () async throws -> LeaderInfo?
    ) -> LeaderChanges {
        LeaderChanges.observing { observer in
            observe(clock: clock, signals: signals, pollInterval: pollInterval, read: read, observer: observer)
        }
    }

    /// Starts the feed, handing each observation to `observer`.
    public static func observe(
        clock: BatonClock,
        pollInterval: Duration?,
        signals: ChangeSignals.Subscription,
        read: @escaping @Sendable () async throws -> LeaderInfo?,
        observer: @escaping LeaderObserver
    ) -> ChangeObservation {
        observe(clock: clock, signals: signals, pollInterval: { _ in pollInterval }, read: read, observer: observer)
    }

    /// Starts the feed, handing each observation to `observer`, polling at an interval chosen after each read.
    public static func observe(
        clock: BatonClock,
        signals: ChangeSignals.Subscription,
        pollInterval: @escaping @Sendable (LeaderInfo?) -> Duration?,
        read: @escaping @Sendable () async throws -> LeaderInfo?,
        observer: @escaping LeaderObserver
    ) -> ChangeObservation {
        let feed = Feed(clock: clock, signals: signals, pollInterval: pollInterval, read: read, observer: observer)
        signals.start { [weak feed] signal in
            switch signal {
            case .changed: feed?.wake()
            // The store closed: read once more, so the feed ends with the store's error instead of waiting for a
            // wake-up that will never come.
            case .ended: feed?.wake()
            }
        }
        feed.wake()
        return ChangeObservation { feed.stop() }
    }

    /// One running feed: who reads, what was handed on, and the timer.
    private final class Feed: Sendable {
        private struct State {
            var stopped = false
            /// A read loop runs.
            var reading = false
            /// A wake-up came while reading: read once more.
            var readAgain = false
            var last: LeaderInfo?
            var handedOnOnce = false
            var timerAt: Duration?
            var timer: FeedTimer?
        }

        private let clock: BatonClock
        private let signals: ChangeSignals.Subscription
        private let pollInterval: @Sendable (LeaderInfo?) -> Duration?
        private let read: @Sendable () async throws -> LeaderInfo?
        private let observer: LeaderObserver
        private let state = Mutex(State())

        init(
            clock: BatonClock,
            signals: ChangeSignals.Subscription,
            pollInterval: @escaping @Sendable (LeaderInfo?) -> Duration?,
            read: @escaping @Sendable () async throws -> LeaderInfo?,
            observer: @escaping LeaderObserver
        ) {
            self.clock = clock
            self.signals = signals
            self.pollInterval = pollInterval
            self.read = read
            self.observer = observer
        }

        /// Reads now, or once more after the read under way.
        func wake() {
            let start = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                if state.reading {
                    state.readAgain = true
                    return false
                }
                state.reading = true
                return true
            }
            if start { Task { await self.readLoop() } }
        }

        /// Stops the feed: nothing is handed on after the observation being handed on now, if any. A read under
        /// way is not cancelled but ends by itself (every store bounds its reads) and its answer is dropped:
        /// cancelling it could cost the store a connection (PostgreSQL closes the connection of a cancelled
        /// query), which the next request of the store would then find closing.
        func stop() {
            let timer = state.withLock { state in
                defer {
                    state.stopped = true
                    state.timer = nil
                }
                return state.timer
            }
            timer?.cancel()
            signals.cancel()
        }

        /// Reads until no wake-up came during the last read, handing on what changed.
        private func readLoop() async {
            while true {
                // The term's remaining time is counted from before the read: timing the wake-up from a later `now`
                // would push it past the expiry by however much time passed meanwhile (on a manual clock, by a
                // whole advance made after the consumer saw this observation).
                let readAt = clock.now()
                let result: Result<LeaderInfo?, any Error>
                do {
                    result = .success(try await read())
                } catch {
                    result = .failure(error)
                }
                let observation = state.withLock { state -> LeaderObservation? in
                    guard !state.stopped else { return nil }
                    switch result {
                    case .failure(let error):
                        return .ended(error)
                    case .success(let info):
                        schedule(after: info, readAt: readAt, &state)
                        let changed =
                            !state.handedOnOnce || (info == nil) != (state.last == nil)
                            || (info.map { !$0.isSameTerm(as: state.last) } ?? false)
                        guard changed else { return nil }
                        state.handedOnOnce = true
                        state.last = info
                        return .leader(info)
                    }
                }
                if let observation { observer(observation) }
                if case .ended = observation {
                    stop()
                    return
                }
                let again = state.withLock { state -> Bool in
                    guard !state.stopped, state.readAgain else {
                        state.reading = false
                        return false
                    }
                    state.readAgain = false
                    return true
                }
                if !again { return }
            }
        }

        /// Arms the timer for the next timed read after reading `info`: at the poll interval, and just after the
        /// term's expiry.
        private func schedule(after info: LeaderInfo?, readAt: Duration, _ state: inout State) {
            var next = pollInterval(info)
            if let remaining = info?.remaining {
                let afterExpiry = max(remaining, .zero) + .milliseconds(1)
                next = min(next ?? afterExpiry, afterExpiry)
            }
            guard let next else { return }
            let now = clock.now()
            let at = readAt + next
            guard state.timerAt.map({ at < $0 || $0 <= now }) ?? true else { return }
            state.timer?.cancel()
            state.timerAt = at
            if let origin = clock.hostOrigin {
                // On the host's clock one task serves the timers of every feed (see ``HostTimers``).
                state.timer = .host(
                    HostTimers.shared.schedule(at: origin.advanced(by: at)) { [weak self] in self?.wake() })
            } else {
                state.timer = .task(
                    Task { [weak self, clock] in
                        guard (try? await clock.sleep(until: at)) != nil else { return }
                        self?.wake()
                    })
            }
        }
    }
}

/// The timer of a feed's next timed read: a timer of ``HostTimers`` on the host's clock, else a sleeping task.
private enum FeedTimer: Sendable {
    case host(UInt64)
    case task(Task<Void, Never>)

    func cancel() {
        switch self {
        case .host(let id): HostTimers.shared.cancel(id)
        case .task(let task): task.cancel()
        }
    }
}
