import Baton
import BatonTestKit
import Foundation
import Testing

@testable import BatonRedis

/// The one pub/sub connection of a store: what it keeps subscribed as keys come and go.
@Suite("Redis change subscriptions")
struct RedisSubscriberTests {
    /// How many subscribers the server counts on the change channel of each key.
    private func subscribers(_ store: RedisLeaseStore, _ keys: [String]) async throws -> [Int] {
        let channels = keys.map(store.layout.changeChannel)
        let reply = try await store.nodes[0].send(RESPCommand("PUBSUB", ["NUMSUB"] + channels))
        let parts = try #require(reply.elements)
        return stride(from: 1, to: parts.count, by: 2).map { Int(parts[$0].int64 ?? -1) }
    }

    /// Watches `keys` and waits until every feed has read its key once (so it is subscribed).
    private func watch(_ store: LeaseStore, _ keys: [String]) async throws -> [ChangeRecorder] {
        let recorders = try keys.map { ChangeRecorder(try store.changes(key: $0)) }
        for recorder in recorders {
            #expect(try await recorder.wait { !$0.isEmpty })
        }
        return recorders
    }

    @Test("channels of keys nobody watches any more are unsubscribed as other keys are watched")
    func channelsOfDroppedKeysAreUnsubscribed() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { store, driver in
            let prefix = unique("subscriptions")
            let dropped = (0..<40).map { "\(prefix)-dropped-\($0)" }
            let kept = (0..<40).map { "\(prefix)-kept-\($0)" }
            let droppedRecorders = try await watch(store, dropped)
            #expect(try await subscribers(driver, dropped) == Array(repeating: 1, count: dropped.count))
            for recorder in droppedRecorders { recorder.cancel() }
            let keptRecorders = try await watch(store, kept)
            // The sweep runs once a quarter as many new keys as are subscribed have come: well within 40 keys.
            #expect(try await subscribers(driver, dropped) == Array(repeating: 0, count: dropped.count))
            #expect(try await subscribers(driver, kept) == Array(repeating: 1, count: kept.count))
            for recorder in keptRecorders { recorder.cancel() }
        }
    }

    @Test("a key watched again, or read again on a change, stays subscribed once")
    func rereadingAKeyKeepsOneSubscription() async throws {
        guard let url = try RedisTestServer.url() else { return }
        try await withRedisStore(url) { store, driver in
            let key = unique("resubscribe")
            let first = try await watch(store, [key])
            let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(10)).lease)
            #expect(try await first[0].wait { $0.last??.holder == "a" })
            let second = try await watch(store, [key])
            try await store.release(lease)
            #expect(try await second[0].wait { $0.last == .some(nil) })
            #expect(try await subscribers(driver, [key]) == [1])
            for recorder in first + second { recorder.cancel() }
        }
    }
}
