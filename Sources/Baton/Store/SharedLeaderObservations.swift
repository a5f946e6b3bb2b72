import Synchronization

/// One change feed per key, shared by every ``LeaseStore/observe(key:_:)`` of that key in one store, in the push
/// form: a store whose feed reads (after each wake-up, at each expiry timer) then reads, and keeps a timer, once
/// per key however many electors of the process follow it, and a change costs one task and a call per observer
/// instead of a task and a read per observer.
///
/// Each observer sees what its own feed would show: first the last observation (at once when the key's feed
/// already runs, else after the feed's first read), then each change, in order. The feed's end (an error, the
/// store closing) is handed to every observer, and the next observer of the key starts a new feed. The feed
/// stops when its last observer cancels.
///
/// An observer is called outside every lock of this type, one call at a time, and may cancel its own or another
/// observation from within the call.
@_spi(BatonStoreKit) public final class SharedLeaderObservations: Sendable {
    /// One observer: its calls are made one at a time under its own lock, in the order of the feed's
    /// observations.
    private final class Observer: Sendable {
        /// The number of the last observation handed on; held while the observer is called.
        private let last = Mutex<UInt64>(0)
        /// Set without the lock above, so that an observer may stop itself from within its call.
        private let stopped = Atomic<Bool>(false)
        private let observer: LeaderObserver

        init(_ observer: @escaping LeaderObserver) {
            self.observer = observer
        }

        /// Hands on observation number `number` unless a later one was handed on already.
        func deliver(_ number: UInt64, _ observation: LeaderObservation) {
            last.withLock { last in
                guard number > last, !stopped.load(ordering: .acquiring) else { return }
                last = number
                observer(observation)
            }
        }

        func stop() {
            stopped.store(true, ordering: .releasing)
        }
    }

    private struct Feed {
        var observers: [Int: Observer] = [:]
        /// The last observation and its number, once there is one.
        var latest: (number: UInt64, observation: LeaderObservation)?
        /// The running feed; nil while it is being started.
        var observation: ChangeObservation?
        /// Counts the feeds started for the key, so a stale feed's calls do not touch its successor.
        var generation: Int
    }

    private struct State {
        var feeds: [String: Feed] = [:]
        var nextID = 0
        var generations = 0
        var numbers: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds `observer` to `key`'s feed; `start` starts the key's one feed (for example with
    /// ``LeaderChangeFeed``) when none runs, handing each observation to the observer it is given.
    public func observe(
        _ key: String,
        _ observer: @escaping LeaderObserver,
        start: (@escaping LeaderObserver) throws -> ChangeObservation
    ) throws -> ChangeObservation {
        let subscriber = Observer(observer)
        let (id, generation, latest, mustStart) = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            var mustStart = false
            if state.feeds[key] == nil {
                state.generations += 1
                state.feeds[key] = Feed(generation: state.generations)
                mustStart = true
            }
            state.feeds[key]!.observers[id] = subscriber
            return (id, state.feeds[key]!.generation, state.feeds[key]!.latest, mustStart)
        }
        let cancel = ChangeObservation(onCancel: { [weak self] in
            subscriber.stop()
            self?.remove(key, id, generation: generation)
        })
        if let latest { subscriber.deliver(latest.number, latest.observation) }
        guard mustStart else { return cancel }
        let running: ChangeObservation
        do {
            running = try start { [weak self] observation in
                self?.handOn(observation, key: key, generation: generation)
            }
        } catch {
            let observers = state.withLock { state -> [Observer] in
                guard let feed = state.feeds[key], feed.generation == generation else { return [] }
                state.feeds[key] = nil
                return Array(feed.observers.values)
            }
            for other in observers where other !== subscriber { other.deliver(UInt64.max, .ended(error)) }
            throw error
        }
        let keep = state.withLock { state -> Bool in
            guard state.feeds[key]?.generation == generation else { return false }
            state.feeds[key]!.observation = running
            return true
        }
        // Every observer left while the feed started.
        if !keep { running.cancel() }
        return cancel
    }

    /// The key's feed observed something: every observer is told, in the order of the feed's calls.
    private func handOn(_ observation: LeaderObservation, key: String, generation: Int) {
        let (number, observers) = state.withLock { state -> (UInt64, [Observer]) in
            guard var feed = state.feeds[key], feed.generation == generation else { return (0, []) }
            state.numbers += 1
            if case .ended = observation {
                // The next observer of the key starts a new feed.
                state.feeds[key] = nil
            } else {
                feed.latest = (state.numbers, observation)
                state.feeds[key] = feed
            }
            return (state.numbers, Array(feed.observers.values))
        }
        for observer in observers { observer.deliver(number, observation) }
    }

    private func remove(_ key: String, _ id: Int, generation: Int) {
        let idle = state.withLock { state -> ChangeObservation?? in
            guard var feed = state.feeds[key], feed.generation == generation,
                feed.observers.removeValue(forKey: id) != nil
            else { return nil }
            if feed.observers.isEmpty {
                state.feeds[key] = nil
                return .some(feed.observation)
            }
            state.feeds[key] = feed
            return nil
        }
        if case .some(let observation) = idle { observation?.cancel() }
    }

    /// The keys whose feeds run now.
    public var keys: [String] {
        state.withLock { Array($0.feeds.keys) }
    }
}
