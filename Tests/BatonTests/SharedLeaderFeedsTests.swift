@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Synchronization
import Testing

@testable import Baton

/// One change feed per key shared by its subscribers: one underlying feed, each subscriber seeing what its own
/// feed would.
@Suite struct SharedLeaderFeedsTests {
    /// The underlying feeds made, each with the continuation that drives it and whether it was stopped.
    final class Underlying: Sendable {
        struct Made {
            var continuation: LeaderChanges.Continuation
            var stopped = false
        }

        let made = Mutex<[Made]>([])

        func make() -> LeaderChanges {
            let (stream, continuation) = LeaderChanges.makeStream()
            let index = made.withLock { made in
                made.append(Made(continuation: continuation))
                return made.count - 1
            }
            continuation.onTermination = { [self] _ in made.withLock { $0[index].stopped = true } }
            return stream
        }

        var count: Int { made.withLock { $0.count } }
        func send(_ info: LeaderInfo?, to index: Int = 0) { _ = made.withLock { $0[index] }.continuation.yield(info) }
        func fail(_ index: Int = 0) {
            made.withLock { $0[index] }.continuation.finish(throwing: BatonError.storeUnavailable("gone"))
        }
        func isStopped(_ index: Int) -> Bool { made.withLock { $0[index].stopped } }
    }

    let a = LeaderInfo(holder: "a", token: 1)
    let b = LeaderInfo(holder: "b", token: 2)

    @Test("subscribers of a key share one feed; a late one starts with the last observation")
    func oneFeedPerKey() async throws {
        let feeds = SharedLeaderFeeds()
        let underlying = Underlying()
        var first = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
        underlying.send(a)
        #expect(try await first.next() == .some(a))
        var second = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
        #expect(try await second.next() == .some(a))
        underlying.send(nil)
        #expect(try await first.next() == .some(nil))
        #expect(try await second.next() == .some(nil))
        #expect(underlying.count == 1)
        // Another key has a feed of its own.
        var other = feeds.subscribe("other") { underlying.make() }.makeAsyncIterator()
        #expect(underlying.count == 2)
        underlying.send(b, to: 1)
        #expect(try await other.next() == .some(b))
    }

    @Test("the feed stops with its last subscriber, and a new subscriber starts a new one")
    func lastSubscriberStopsTheFeed() async throws {
        let feeds = SharedLeaderFeeds()
        let underlying = Underlying()
        let first = Task {
            var iterator = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
            while try await iterator.next() != nil {}
        }
        let second = Task {
            var iterator = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
            while try await iterator.next() != nil {}
        }
        #expect(try await eventually(timeout: .seconds(1)) { underlying.count == 1 })
        first.cancel()
        _ = await first.result
        #expect(!underlying.isStopped(0), "one subscriber is left")
        second.cancel()
        _ = await second.result
        #expect(try await eventually(timeout: .seconds(1)) { underlying.isStopped(0) })
        var again = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
        #expect(underlying.count == 2)
        underlying.send(b, to: 1)
        #expect(try await again.next() == .some(b))
    }

    @Test("a failing feed ends every subscriber with its error; the next subscription starts afresh")
    func failureEndsEverySubscriber() async throws {
        let feeds = SharedLeaderFeeds()
        let underlying = Underlying()
        var first = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
        var second = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
        underlying.send(a)
        #expect(try await first.next() == .some(a))
        #expect(try await second.next() == .some(a))
        underlying.fail()
        await #expect(throws: BatonError.self) { _ = try await first.next() }
        await #expect(throws: BatonError.self) { _ = try await second.next() }
        var again = feeds.subscribe("k") { underlying.make() }.makeAsyncIterator()
        #expect(underlying.count == 2)
        underlying.send(nil, to: 1)
        #expect(try await again.next() == .some(nil))
    }
}
