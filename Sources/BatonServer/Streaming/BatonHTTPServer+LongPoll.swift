@_spi(BatonStoreKit) import Baton
import NIOCore
import ServiceLifecycle

extension BatonHTTPServer {
    /// What a long poll waits for.
    private enum WaitEvent: Sendable {
        /// The store observed a leader (nil: nobody leads).
        case observed(LeaderInfo?)
        /// The store's change feed ended, with the error if it failed.
        case feedEnded((any Error)?)
        /// `wait_ms` is over.
        case deadline
        /// The service is shutting down, or the client left.
        case shutdown
        /// Time to ask again, which keeps the holder's place in the store's queue of waiting candidates.
        case reask
    }

    /// Takes `key` for `holder`, waiting up to `wait` for it to become free.
    ///
    /// Tries once; if the key is held and `wait` is positive, follows the store's change feed and tries again
    /// each time the feed says nobody leads (a release or an expiry), so the answer comes as soon as the key is
    /// free. An attempt under way is never abandoned for the deadline: a lease the store granted is always
    /// answered. Graceful shutdown ends the wait at once with the last leader seen.
    ///
    /// Only an acquire that waits (`wait` positive) is a waiting candidate's: on a store that queues waiting
    /// candidates (SQLite, PostgreSQL, etcd, Redis on one server) it keeps the holder's place in the queue, and
    /// the wait asks again to keep it (``LeaseStore/queueAskInterval(ttl:)``: once per ttl, on etcd every third),
    /// so a client that goes away leaves the queue within one and a half ttl (etcd: one). A plain 409 leaves no
    /// trace.
    /// A wait takes a slot of ``Configuration-swift.struct/Limits/maxLongPolls`` and
    /// ``Configuration-swift.struct/Limits/maxLongPollsPerKey``; with none free the request is answered `503` or
    /// `429` (the first attempt, which found the key held, changed nothing). A client that leaves (its connection
    /// closes) ends the wait at once.
    /// - Returns: the outcome, and when the attempt that granted a lease started (its ttl counts from there).
    func acquireWaiting(
        key: String,
        holder: String,
        ttl: Duration,
        metadata: String?,
        wait: Duration,
        connectionClosed: EventLoopFuture<Void>
    ) async throws -> (result: AcquireResult, started: ContinuousClock.Instant) {
        let store = self.store
        let waits = wait > .zero
        // A client may ask through other replicas of this service too: a term handed to it by a release is granted
        // on the store's answer to a request, never on the release's message alone (see `HandedTerms`).
        let attempt = { @Sendable in
            try await HandedTerms.$holderMayAskElsewhere.withValue(true) {
                try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: waits)
            }
        }
        let firstStarted = ContinuousClock.now
        let first = try await withStore("acquire", attempt)
        guard case .held(var leader) = first, wait > .zero else { return (first, firstStarted) }

        let permit = try limiters.longPolls.admit(key: key)
        defer { permit.release() }
        let deadline = ContinuousClock.now + wait
        let (events, continuation) = AsyncStream.makeStream(of: WaitEvent.self)
        let observation = try store.observe(key: key) { observed in
            switch observed {
            case .leader(let leader): continuation.yield(.observed(leader))
            case .ended(let error): continuation.yield(.feedEnded(error))
            }
        }
        connectionClosed.whenComplete { _ in continuation.yield(.shutdown) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            defer {
                observation.cancel()
                continuation.finish()
                group.cancelAll()
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                continuation.yield(.deadline)
            }
            if let interval = store.queueAskInterval(ttl: ttl) {
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil { continuation.yield(.reask) }
                }
            }
            return try await withGracefulShutdownHandler {
                for await event in events {
                    switch event {
                    case .observed(let observed?) where observed.holder != holder:
                        leader = observed
                    case .observed, .reask:
                        let started = ContinuousClock.now
                        switch try await withStore("acquire", attempt) {
                        case .acquired(let lease): return (.acquired(lease), started)
                        case .held(let current): leader = current
                        }
                    case .feedEnded(let error?):
                        throw error
                    case .feedEnded(nil), .deadline, .shutdown:
                        return (.held(by: leader), .now)
                    }
                }
                return (.held(by: leader), .now)
            } onGracefulShutdown: {
                continuation.yield(.shutdown)
            }
        }
    }
}
