import Baton
import BatonServer
import BatonTestKit
import Foundation
import ServiceLifecycle
import Testing

/// `POST /v2/leases/{key}` with `wait_ms`: the long poll.
@Suite("HTTP service: long-poll acquire")
struct LongPollTests {
    @Test("a waiting acquire is answered right after the holder releases, with a larger token")
    func handoverOnRelease() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await withLiveServer(makeServer(store: LeaseStore(store))) { server in
            let held = try await server.post("/v2/leases/db", json(["holder": "a", "ttl_ms": 60_000]))
            let first = try token(held)
            let start = ContinuousClock.now
            async let waiting = server.post(
                "/v2/leases/db", json(["holder": "b", "ttl_ms": 60_000, "wait_ms": 60_000]))
            // Release once the waiter follows the store's change feed, so that the wait is real.
            #expect(try await eventually { store.callCount(.changes) >= 1 })
            let released = ContinuousClock.now
            #expect(try await server.delete("/v2/leases/db", json(["holder": "a", "token": first])).status == 204)
            let answer = try await waiting
            let answered = ContinuousClock.now
            #expect(answer.status == 200)
            #expect(try answer.object()["holder"] as? String == "b")
            #expect(try token(answer) > first)
            #expect(answered - released < .seconds(2), "answered as soon as the lease is free, not at wait_ms")
            #expect(answered - start < .seconds(30))
        }
    }

    @Test("a waiting acquire is answered when the holder's lease expires")
    func handoverOnExpiry() async throws {
        try await makeServer().test(.router) { client in
            _ = try await client.post("/v2/leases/db", json(["holder": "a", "ttl_ms": 300]))
            let start = ContinuousClock.now
            let answer = try await client.post(
                "/v2/leases/db", json(["holder": "b", "ttl_ms": 5_000, "wait_ms": 20_000]))
            let elapsed = ContinuousClock.now - start
            #expect(answer.status == 200)
            #expect(try answer.object()["holder"] as? String == "b")
            #expect(elapsed < .seconds(5))
        }
    }

    @Test("when wait_ms passes the answer is 409 with the leader")
    func waitRunsOut() async throws {
        try await makeServer().test(.router) { client in
            _ = try await client.post("/v2/leases/db", json(["holder": "a", "ttl_ms": 60_000]))
            let start = ContinuousClock.now
            let answer = try await client.post("/v2/leases/db", json(["holder": "b", "ttl_ms": 5_000, "wait_ms": 300]))
            let elapsed = ContinuousClock.now - start
            #expect(answer.status == 409)
            #expect((try answer.object()["leader"] as? [String: Any])?["holder"] as? String == "a")
            #expect(elapsed >= .milliseconds(300))
            #expect(elapsed < .seconds(5))
        }
    }

    @Test("without wait_ms, or with 0, a held lease is answered 409 at once")
    func noWait() async throws {
        try await makeServer().test(.router) { client in
            _ = try await client.post("/v2/leases/db", json(["holder": "a", "ttl_ms": 60_000]))
            let start = ContinuousClock.now
            #expect(try await client.post("/v2/leases/db", json(["holder": "b", "ttl_ms": 5_000])).status == 409)
            #expect(
                try await client.post("/v2/leases/db", json(["holder": "b", "ttl_ms": 5_000, "wait_ms": 0])).status
                    == 409)
            #expect(ContinuousClock.now - start < .seconds(1))
        }
    }

    @Test("graceful shutdown answers a waiting acquire at once")
    func shutdownAnswersWaiters() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await withLiveServer(makeServer(store: LeaseStore(store))) { server in
            _ = try await server.post("/v2/leases/db", json(["holder": "a", "ttl_ms": 60_000]))
            async let waiting = server.post(
                "/v2/leases/db", json(["holder": "b", "ttl_ms": 5_000, "wait_ms": 120_000]))
            #expect(try await eventually { store.callCount(.changes) >= 1 })
            let start = ContinuousClock.now
            await server.group.triggerGracefulShutdown()
            let answer = try await waiting
            #expect(answer.status == 409)
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }
}
