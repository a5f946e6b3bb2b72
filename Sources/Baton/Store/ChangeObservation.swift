import Synchronization

/// What an observer of a key's leader is told: each observation of ``LeaseStore/changes(key:)``, then how the
/// feed ended.
public enum LeaderObservation: Sendable {
    /// The leader now (nil: nobody leads). The first is the leader when the observation started.
    case leader(LeaderInfo?)
    /// The feed ended: nil when it finished, else the store's error. Nothing follows.
    case ended((any Error)?)
}

/// A handler of ``LeaderObservation``s. It is called from the store's own work, one call at a time and in order,
/// so it must return quickly and never wait (hand the observation on, for example to a continuation).
public typealias LeaderObserver = @Sendable (LeaderObservation) -> Void

/// A running observation of a key's leader (``LeaseStore/observe(key:_:)``): the push form of
/// ``LeaseStore/changes(key:)``, which keeps no task waiting while nothing changes.
///
/// ``cancel()`` stops it, and so does dropping the last reference to it. After `cancel()` returns, the observer
/// may still get the one observation that was being delivered, and nothing after that.
public final class ChangeObservation: Sendable {
    private let onCancel: Mutex<(@Sendable () -> Void)?>

    /// An observation that runs `onCancel` (once) when cancelled or dropped.
    public init(onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = Mutex(onCancel)
    }

    /// Stops the observation. Idempotent.
    public func cancel() {
        let action = onCancel.withLock { action in
            defer { action = nil }
            return action
        }
        action?()
    }

    deinit { cancel() }

    /// Hands each element of `changes` to `observer` from a task of its own, then the end; the task stops when
    /// the observation is cancelled. For stores whose feed is a sequence.
    public static func forwarding(_ changes: LeaderChanges, to observer: @escaping LeaderObserver) -> ChangeObservation
    {
        let task = Task {
            do {
                for try await leader in changes { observer(.leader(leader)) }
                if !Task.isCancelled { observer(.ended(nil)) }
            } catch {
                if !Task.isCancelled { observer(.ended(error)) }
            }
        }
        return ChangeObservation { task.cancel() }
    }
}

extension LeaderChanges {
    /// The sequence form of an observation that `start` begins with the observer it is given: the sequence yields
    /// each observed leader (the newest one kept for a consumer that falls behind) and ends as the observation
    /// ends; a consumer that stops (or is cancelled) cancels the observation.
    public static func observing(
        _ start: (@escaping LeaderObserver) throws -> ChangeObservation
    ) rethrows -> LeaderChanges {
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let observation = try start { observation in
            switch observation {
            case .leader(let leader): continuation.yield(leader)
            case .ended(let error): continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in observation.cancel() }
        return stream
    }
}
