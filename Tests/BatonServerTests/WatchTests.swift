import AsyncHTTPClient
import Baton
import BatonServer
import BatonTestKit
import Foundation
import NIOHTTP1
import ServiceLifecycle
import Testing

/// `GET /v2/leases/{key}/watch`: Server-Sent Events.
@Suite("HTTP service: watching a lease")
struct WatchTests {
    @Test("one event per leader change, including no leader")
    func events() async throws {
        try await withLiveServer(makeServer()) { server in
            let response = try await server.open("/v2/leases/jobs%2Fcleaner/watch")
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "content-type") == "text/event-stream")
            var events = EventStreamReader(response)

            let vacant = try #require(try await events.nextLeader())
            #expect(vacant["key"] as? String == "jobs/cleaner")
            #expect(vacant["leader"] is NSNull)

            let acquired = try await server.post(
                "/v2/leases/jobs%2Fcleaner", json(["holder": "a", "ttl_ms": 60_000, "metadata": "10.0.0.5:80"]))
            let first = try token(acquired)
            let elected = try #require(try await events.nextLeader())
            let leader = try #require(elected["leader"] as? [String: Any])
            #expect(leader["holder"] as? String == "a")
            #expect((leader["token"] as? NSNumber)?.int64Value == first)
            #expect(leader["metadata"] as? String == "10.0.0.5:80")

            _ = try await server.delete("/v2/leases/jobs%2Fcleaner", json(["holder": "a", "token": first]))
            let released = try #require(try await events.nextLeader())
            #expect(released["leader"] is NSNull)

            let next = try await server.post("/v2/leases/jobs%2Fcleaner", json(["holder": "b", "ttl_ms": 60_000]))
            let successor = try #require(try await events.nextLeader())
            let successorLeader = try #require(successor["leader"] as? [String: Any])
            #expect(successorLeader["holder"] as? String == "b")
            #expect((successorLeader["token"] as? NSNumber)?.int64Value == (try token(next)))
        }
    }

    @Test("a comment keeps the stream alive when nothing happens")
    func keepAlive() async throws {
        let server = makeServer { $0.keepAliveInterval = .milliseconds(100) }
        try await withLiveServer(server) { server in
            var events = EventStreamReader(try await server.open("/v2/leases/quiet/watch"))
            _ = try await events.nextLeader()
            let message = try #require(try await events.next())
            #expect(message.comment == "keep-alive")
        }
    }

    @Test("graceful shutdown ends the stream cleanly")
    func shutdownEndsStream() async throws {
        try await withLiveServer(makeServer()) { server in
            var events = EventStreamReader(try await server.open("/v2/leases/k/watch"))
            _ = try #require(try await events.nextLeader())
            await server.group.triggerGracefulShutdown()
            // The body ends (nil), without an error from the client.
            while let message = try await events.next() {
                #expect(message.event != "leader" || message.data != nil)
            }
        }
    }

    @Test("a failing store feed ends the stream with an error event")
    func feedFailure() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await withLiveServer(makeServer(store: LeaseStore(store))) { server in
            var events = EventStreamReader(try await server.open("/v2/leases/k/watch"))
            _ = try #require(try await events.nextLeader())
            store.setFault(.fail, for: .operation(.changes))
            var last: EventMessage?
            while let message = try await events.next() { last = message }
            #expect(last?.event == "error")
            #expect(last?.data?.contains("unavailable") == true)
        }
    }

    @Test("a malformed key is a 400 before the stream starts")
    func badKey() async throws {
        try await makeServer().test(.router) { client in
            let answer = try await client.get("/v2/leases/\(String(repeating: "k", count: 300))/watch")
            #expect(answer.status == 400)
            #expect(answer.errorMessage.contains("key is 300 bytes long"))
        }
    }
}
