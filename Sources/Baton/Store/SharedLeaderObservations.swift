import Synchronization

/// Who observes: the holder of the elector that subscribes to a key's feed, set around its
/// ``LeaseStore/observe(key:_:)`` call. A store that tells many observers of one process the same change tells the
/// one named as the key's new leader first (the next in line of a queue, whose acquire then starts at once), and
/// the rest after it: a release reaches the candidate that matters before the herd of those that only note it.
@_spi(BatonStoreKit) public enum ObserverHolder {
    /// The observing holder, if known.
    @TaskLocal public static var current: String?

    /// `observations` with those whose holder is `leader`'s first, otherwise in their order. Inlinable, so that a
    /// store's module specializes it: a release's pass over its observers calls it once per change.
    @inlinable
    public static func leaderFirst<T>(_ observations: [(holder: String?, value: T)], leader: String?) -> [T] {
        guard let leader, observations.count > 1,
            let index = observations.firstIndex(where: { $0.holder == leader })
        else { return observations.map(\.value) }
        var ordered = [observations[index].value]
        ordered.reserveCapacity(observations.count)
        for (position, observation) in observations.enumerated() where position != index {
            ordered.append(observation.value)
        }
        return ordered
    }
}

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

    /// Starts a key's feed, handing each observation to the observer it is given.
    public typealias Start = @Sendable (@escaping LeaderObserver) throws -> ChangeObservation

    /// An observer in a feed: since when, and whether it was moved to a new feed once already.
    private struct Member {
        var observer: Observer
        /// The observing holder (``ObserverHolder``), if known.
        var holder: String?
        /// The number of the last observation made (of any feed) when it joined.
        var joined: UInt64
        /// Moved to a new feed because the one it joined ended before telling it anything new (or started the
        /// feed it is in): not to be moved again.
        var moved = false
    }

    private struct Feed {
        var members: [Int: Member] = [:]
        /// The last observation and its number, once there is one.
        var latest: (number: UInt64, observation: LeaderObservation)?
        /// The running feed; nil while it is being started.
        var observation: ChangeObservation?
        /// Counts the feeds started for the key, so a stale feed's calls do not touch its successor.
        var generation: Int
        var start: Start
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
    public func observe(_ key: String, _ observer: @escaping LeaderObserver, start: @escaping Start) throws
        -> ChangeObservation
    {
        let subscriber = Observer(observer)
        let (id, generation, latest, mustStart) = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            var mustStart = false
            if state.feeds[key] == nil {
                state.generations += 1
                state.feeds[key] = Feed(generation: state.generations, start: start)
                mustStart = true
            }
            // The observer that starts a feed gets what its own feed would give: it is never moved.
            state.feeds[key]!.members[id] = Member(
                observer: subscriber, holder: ObserverHolder.current, joined: state.numbers, moved: mustStart)
            return (id, state.feeds[key]!.generation, state.feeds[key]!.latest, mustStart)
        }
        let cancel = ChangeObservation(onCancel: { [weak self] in
            subscriber.stop()
            self?.remove(key, id)
        })
        if let latest { subscriber.deliver(latest.number, latest.observation) }
        guard mustStart else { return cancel }
        if let error = launch(key, generation: generation, start) {
            // Its own observe fails; the others that joined meanwhile are told.
            for other in endFeed(key, generation: generation) where other !== subscriber {
                other.deliver(UInt64.max, .ended(error))
            }
            throw error
        }
        return cancel
    }

    /// Starts generation `generation` of `key`'s feed; the error if it cannot start.
    private func launch(_ key: String, generation: Int, _ start: Start) -> (any Error)? {
        let running: ChangeObservation
        do {
            running = try start { [weak self] observation in
                self?.handOn(observation, key: key, generation: generation)
            }
        } catch {
            return error
        }
        let keep = state.withLock { state -> Bool in
            guard state.feeds[key]?.generation == generation else { return false }
            state.feeds[key]!.observation = running
            return true
        }
        // Every observer left while the feed started.
        if !keep { running.cancel() }
        return nil
    }

    /// Takes generation `generation` of `key`'s feed out; returns its observers.
    private func endFeed(_ key: String, generation: Int) -> [Observer] {
        state.withLock { state in
            guard let feed = state.feeds[key], feed.generation == generation else { return [] }
            state.feeds[key] = nil
            return feed.members.values.map(\.observer)
        }
    }

    /// The key's feed observed something: every observer is told, in the order of the feed's calls.
    ///
    /// When the feed ends, an observer that joined it after its last observation (so nothing the feed read
    /// since it joined was good) is moved to a new feed instead, once: its own feed would have read afresh, and a
    /// read that began before it joined (on a connection that died meanwhile, say) must not end it.
    private func handOn(_ observation: LeaderObservation, key: String, generation: Int) {
        enum Next {
            case none
            case restart(Int, Start)
        }
        let (number, observers, next) = state.withLock { state -> (UInt64, [Observer], Next) in
            guard var feed = state.feeds[key], feed.generation == generation else { return (0, [], .none) }
            let before = state.numbers
            state.numbers += 1
            guard case .ended = observation else {
                feed.latest = (state.numbers, observation)
                state.feeds[key] = feed
                // The new leader's own observer first (the head of a queue, whose acquire is what a release waits
                // for), then the others.
                guard case .leader(let leader?) = observation else {
                    return (state.numbers, feed.members.values.map(\.observer), .none)
                }
                let members = feed.members.values.map { (holder: $0.holder, value: $0.observer) }
                return (state.numbers, ObserverHolder.leaderFirst(members, leader: leader.holder), .none)
            }
            let moving = feed.members.filter { $0.value.joined >= before && !$0.value.moved }
            let ending = feed.members.filter { moving[$0.key] == nil }.values.map(\.observer)
            guard !moving.isEmpty else {
                state.feeds[key] = nil
                return (state.numbers, ending, .none)
            }
            state.generations += 1
            var successor = Feed(generation: state.generations, start: feed.start)
            for (id, var member) in moving {
                member.moved = true
                member.joined = state.numbers
                successor.members[id] = member
            }
            state.feeds[key] = successor
            return (state.numbers, ending, .restart(successor.generation, feed.start))
        }
        for observer in observers { observer.deliver(number, observation) }
        if case .restart(let successor, let start) = next, let error = launch(key, generation: successor, start) {
            for observer in endFeed(key, generation: successor) { observer.deliver(UInt64.max, .ended(error)) }
        }
    }

    private func remove(_ key: String, _ id: Int) {
        let idle = state.withLock { state -> ChangeObservation?? in
            guard var feed = state.feeds[key], feed.members.removeValue(forKey: id) != nil else { return nil }
            if feed.members.isEmpty {
                state.feeds[key] = nil
                return .some(feed.observation)
            }
            state.feeds[key] = feed
            return nil
        }
        if case .some(let observation) = idle { observation?.cancel() }
    }
}
