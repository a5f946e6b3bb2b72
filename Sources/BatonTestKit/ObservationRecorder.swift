import Baton
import Synchronization

/// Records the leaders that `count` push observations (``LeaseStore/observe(key:_:)``) of one key see, all in one
/// list: a test of a store that shares one feed per key among its observers.
public final class ObservationRecorder: Sendable {
    /// The leaders seen, in a class of its own so that the observers can hold it.
    private final class Seen: Sendable {
        let list = Mutex<[LeaderInfo?]>([])
    }

    private let seen = Seen()
    private let observations = Mutex<[ChangeObservation]>([])

    /// Starts `count` observations of `key` in `store`.
    public init(_ store: LeaseStore, key: String, count: Int) throws {
        for _ in 0..<count {
            let observation = try store.observe(key: key) { [seen] observation in
                if case .leader(let info) = observation { seen.list.withLock { $0.append(info) } }
            }
            observations.withLock { $0.append(observation) }
        }
    }

    /// Every leader seen so far, by all the observations, in the order they were seen (`nil`: no leader).
    public var leaders: [LeaderInfo?] { seen.list.withLock { $0 } }

    /// Stops every observation.
    public func cancel() {
        for observation in observations.withLock({ $0 }) { observation.cancel() }
    }
}
