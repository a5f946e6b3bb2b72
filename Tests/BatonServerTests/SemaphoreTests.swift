import Baton
import BatonServer
import BatonTestKit
import Foundation
import Testing

/// `/v2/semaphores/{key}`: up to `permits` holders at once, each in a slot with its own token; renew, release, the
/// holders' listing, the number of permits fixed while in use, and the long poll across the slots.
@Suite("HTTP service: semaphores")
struct SemaphoreTests {
    @Test("two permits of three: each in its own slot; a fourth holder is refused with the slots' holders")
    func permitsTakeDistinctSlots() async throws {
        try await makeServer().test(.router) { client in
            var slots: Set<Int> = []
            for holder in ["a", "b", "c"] {
                let answer = try await client.post(
                    "/v2/semaphores/render", json(["holder": holder, "permits": 3, "ttl_ms": 60_000]))
                #expect(answer.status == 200, "\(answer)")
                let permit = try answer.object()
                let slot = try #require(permit["slot"] as? Int)
                slots.insert(slot)
                #expect(permit["slot_key"] as? String == "render#\(slot)")
                #expect(permit["permits"] as? Int == 3)
                #expect(permit["key"] as? String == "render")
            }
            #expect(slots == [0, 1, 2])
            let refused = try await client.post(
                "/v2/semaphores/render", json(["holder": "d", "permits": 3, "ttl_ms": 60_000]))
            #expect(refused.status == 409)
            #expect(try refused.object()["code"] as? String == "held")
            let holders = try #require(try refused.object()["holders"] as? [[String: Any]])
            #expect(Set(holders.compactMap { $0["holder"] as? String }) == ["a", "b", "c"])

            // A holder asking again keeps its slot and token.
            let again = try await client.post(
                "/v2/semaphores/render", json(["holder": "a", "permits": 3, "ttl_ms": 60_000]))
            #expect(again.status == 200)
            let listing = try await client.get("/v2/semaphores/render")
            #expect(listing.status == 200)
            #expect(try listing.object()["permits"] as? Int == 3)
            #expect((try listing.object()["holders"] as? [Any])?.count == 3)
        }
    }

    @Test("two long polls of one holder get one slot, not one each, when two slots free up")
    func oneHolderOneSlot() async throws {
        try await makeServer().test(.router) { client in
            var tokens: [String: Int64] = [:]
            var slots: [String: Int] = [:]
            for holder in ["b", "c"] {
                let permit = try await client.post(
                    "/v2/semaphores/together", json(["holder": holder, "permits": 2, "ttl_ms": 60_000])
                ).object()
                tokens[holder] = (permit["token"] as? NSNumber)?.int64Value
                slots[holder] = permit["slot"] as? Int
            }
            let waiting = (0..<2).map { _ in
                Task {
                    try await client.post(
                        "/v2/semaphores/together",
                        json(["holder": "a", "permits": 2, "ttl_ms": 60_000, "wait_ms": 10_000]))
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            for holder in ["b", "c"] {
                let released = try await client.delete(
                    "/v2/semaphores/together",
                    json(["holder": holder, "permits": 2, "slot": slots[holder]!, "token": tokens[holder]!]))
                #expect(released.status == 204)
            }
            var answers: [Int?] = []
            for request in waiting {
                let answer = try await request.value
                #expect(answer.status == 200, "\(answer)")
                answers.append(try answer.object()["slot"] as? Int)
            }
            #expect(Set(answers).count == 1, "holder a took slots \(answers)")
            let holders = try #require(try await client.get("/v2/semaphores/together").object()["holders"] as? [Any])
            #expect(holders.compactMap { ($0 as? [String: Any])?["holder"] as? String } == ["a"], "\(holders)")
        }
    }

    @Test("renew keeps the token; release frees the slot for the next holder, with a larger token")
    func renewAndRelease() async throws {
        try await makeServer().test(.router) { client in
            let taken = try await client.post(
                "/v2/semaphores/pool", json(["holder": "a", "permits": 1, "ttl_ms": 60_000]))
            let permit = try taken.object()
            let token = try #require(permit["token"] as? Int)
            #expect(permit["slot_key"] as? String == "pool", "a semaphore of 1 is the key's election")
            let renewed = try await client.put(
                "/v2/semaphores/pool",
                json(["holder": "a", "permits": 1, "slot": 0, "token": token, "ttl_ms": 60_000]))
            #expect(renewed.status == 200)
            #expect(try renewed.object()["token"] as? Int == token)
            let wrong = try await client.put(
                "/v2/semaphores/pool",
                json(["holder": "a", "permits": 1, "slot": 0, "token": token + 1, "ttl_ms": 60_000]))
            #expect(wrong.status == 409)
            #expect(try wrong.object()["code"] as? String == "lost")
            let released = try await client.delete(
                "/v2/semaphores/pool", json(["holder": "a", "permits": 1, "slot": 0, "token": token]))
            #expect(released.status == 204)
            let next = try await client.post(
                "/v2/semaphores/pool", json(["holder": "b", "permits": 1, "ttl_ms": 60_000]))
            #expect(next.status == 200)
            #expect(try #require(try next.object()["token"] as? Int) > token)
        }
    }

    @Test("another number of permits is a 400 while in use; bad slots, numbers and names are 400s")
    func badInput() async throws {
        try await makeServer().test(.router) { client in
            _ = try await client.post("/v2/semaphores/k", json(["holder": "a", "permits": 2, "ttl_ms": 60_000]))
            let other = try await client.post(
                "/v2/semaphores/k", json(["holder": "b", "permits": 3, "ttl_ms": 60_000]))
            #expect(other.status == 400)
            #expect((try other.object()["error"] as? String)?.contains("in use with 2 permits (by a)") == true)
            for (body, mentions) in [
                (["holder": "a", "permits": 0, "ttl_ms": 1000], "permits is 0"),
                (["holder": "a", "permits": 1001, "ttl_ms": 1000], "permits is 1001"),
                (["holder": "a", "ttl_ms": 1000], "permits"),
            ] as [([String: Any], String)] {
                let answer = try await client.post("/v2/semaphores/x", json(body))
                #expect(answer.status == 400)
                #expect((try answer.object()["error"] as? String)?.contains(mentions) == true, "\(answer)")
            }
            let badSlot = try await client.put(
                "/v2/semaphores/k", json(["holder": "a", "permits": 2, "slot": 2, "token": 1, "ttl_ms": 1000]))
            #expect(badSlot.status == 400)
            #expect((try badSlot.object()["error"] as? String)?.contains("slots 0–1") == true)
            let long = String(repeating: "k", count: 250)
            let tooLong = try await client.post(
                "/v2/semaphores/\(long)", json(["holder": "a", "permits": 2, "ttl_ms": 1000]))
            #expect(tooLong.status == 400)
            #expect((try tooLong.object()["error"] as? String)?.contains("too long for a semaphore") == true)
            let none = try await client.get("/v2/semaphores/unused")
            #expect(none.status == 404)
            let badQuery = try await client.get("/v2/semaphores/k?permits=zero")
            #expect(badQuery.status == 400)
        }
    }

    @Test("a long poll waits in every slot and takes the first one freed, at once")
    func longPollTakesTheFreedSlot() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await withLiveServer(makeServer(store: LeaseStore(store))) { server in
            var tokens: [Int: Int] = [:]
            for holder in ["a", "b"] {
                let permit = try await server.post(
                    "/v2/semaphores/q", json(["holder": holder, "permits": 2, "ttl_ms": 60_000])
                ).object()
                tokens[try #require(permit["slot"] as? Int)] = try #require(permit["token"] as? Int)
            }
            async let waiting = server.post(
                "/v2/semaphores/q", json(["holder": "c", "permits": 2, "ttl_ms": 60_000, "wait_ms": 60_000]))
            // Release once the waiter follows both slots' change feeds.
            #expect(try await eventually { store.callCount(.changes) >= 2 })
            let released = ContinuousClock.now
            let holderOfSlot1 = try await server.get("/v2/semaphores/q").object()["holders"] as? [[String: Any]]
            let holder = try #require(holderOfSlot1?[1]["holder"] as? String)
            let answer = try await server.delete(
                "/v2/semaphores/q",
                json(["holder": holder, "permits": 2, "slot": 1, "token": try #require(tokens[1])]))
            #expect(answer.status == 204)
            let taken = try await waiting
            #expect(taken.status == 200, "\(taken)")
            let permit = try taken.object()
            #expect(permit["slot"] as? Int == 1)
            #expect(try #require(permit["token"] as? Int) > (tokens[1] ?? .max))
            #expect(ContinuousClock.now - released < .seconds(2), "answered as soon as the slot was free")
            // It left slot 0's queue: a release there leaves slot 0 free, not handed to c.
            let before = try await server.get("/v2/semaphores/q").object()["holders"] as? [Any]
            let holderOfSlot0 = try #require((before?[0] as? [String: Any])?["holder"] as? String)
            let freed = try await server.delete(
                "/v2/semaphores/q",
                json(["holder": holderOfSlot0, "permits": 2, "slot": 0, "token": try #require(tokens[0])]))
            #expect(freed.status == 204)
            let after = try await server.get("/v2/semaphores/q").object()["holders"] as? [Any]
            #expect(after?[0] is NSNull, "slot 0 went to \(String(describing: after?[0]))")
        }
    }
}
