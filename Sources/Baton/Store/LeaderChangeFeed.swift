/// Builds a store's ``LeaseStore/changes(key:)`` from two primitives: a read of the current leader, and
/// wake-up signals that say "something may have changed".
///
/// The feed reads once at the start and yields the result, then reads again on every signal, when the current
/// term's remaining time runs out (so an expiry is seen without a signal), and every `pollInterval` if one is
/// given (for stores without push, or as a safety net). It yields only when the leader differs from the last
/// value yielded (holder, token or metadata). A failed read ends the sequence with that error.
///
/// The reading task belongs to the returned sequence: it stops when the consumer stops iterating or is
/// cancelled.
@_spi(BatonStoreKit) public enum LeaderChangeFeed {
    /// Makes the sequence. Create `signals` (for example with ``ChangeSignals/subscribe(_:)``) before calling
    /// this, so that no change is missed between subscribing and the first read.
    public static func make(
        clock: BatonClock,
        pollInterval: Duration?,
        signals: AsyncStream<Void>,
        read: @escaping @Sendable () async throws -> LeaderInfo?
    ) -> LeaderChanges {
        make(clock: clock, signals: signals, pollInterval: { _ in pollInterval }, read: read)
    }

    /// Makes the sequence, polling at an interval chosen after each read from what it read (for example a
    /// fraction of the current term's ttl); nil polls not at all after that read.
    public static func make(
        clock: BatonClock,
        signals: AsyncStream<Void>,
        pollInterval: @escaping @Sendable (LeaderInfo?) -> Duration?,
        read: @escaping @Sendable () async throws -> LeaderInfo?
    ) -> LeaderChanges {
        let (stream, continuation) = LeaderChanges.makeStream(bufferingPolicy: .bufferingNewest(1))
        let task = Task {
            let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in signals { wake.yield() }
                    // The signals ended (the store closed): read once more, so the feed ends with the store's
                    // error instead of waiting for a wake-up that will never come.
                    if !Task.isCancelled { wake.yield() }
                }
                var last: LeaderInfo?
                var yieldedOnce = false
                var timerAt: Duration?
                wake.yield()
                for await _ in wakes {
                    if Task.isCancelled { break }
                    // The term's remaining time is counted from before the read: timing the wake-up from a
                    // later `now` would push it past the expiry by however much time passed meanwhile (on a
                    // manual clock, by a whole advance made after the consumer saw this observation).
                    let readAt = clock.now()
                    let info: LeaderInfo?
                    do {
                        info = try await read()
                    } catch {
                        continuation.finish(throwing: error)
                        break
                    }
                    let changed =
                        !yieldedOnce || (info == nil) != (last == nil)
                        || (info.map { !$0.isSameTerm(as: last) } ?? false)
                    if changed {
                        yieldedOnce = true
                        last = info
                        continuation.yield(info)
                    }
                    var next = pollInterval(info)
                    if let remaining = info?.remaining {
                        let afterExpiry = max(remaining, .zero) + .milliseconds(1)
                        next = min(next ?? afterExpiry, afterExpiry)
                    }
                    if let next {
                        let now = clock.now()
                        let at = readAt + next
                        if timerAt.map({ at < $0 || $0 <= now }) ?? true {
                            timerAt = at
                            group.addTask {
                                try? await clock.sleep(until: at)
                                wake.yield()
                            }
                        }
                    }
                }
                group.cancelAll()
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
