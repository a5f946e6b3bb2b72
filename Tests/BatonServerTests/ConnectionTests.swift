import Baton
import BatonServer
import BatonTestKit
import Foundation
import NIOCore
import NIOPosix
import Testing

/// Readiness, slow clients, and the connection-level limits.
@Suite("HTTP service: readiness and connections")
struct ConnectionTests {
    @Test("readyz says 503 while the store does not answer; healthz stays 200")
    func readiness() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await makeServer(store: LeaseStore(store)).test(.router) { client in
            store.partition()
            let notReady = try await client.get("/readyz")
            #expect(notReady.status == 503)
            #expect(try notReady.object()["code"] as? String == "not_ready")
            #expect(try await client.get("/healthz").status == 200)
            #expect(try await client.get("/alive").status == 200)
            store.heal()
            #expect(try await client.get("/readyz").status == 200)
        }
    }

    @Test("a client that trickles its request is disconnected after the read timeout; others are served")
    func slowClient() async throws {
        let server = makeServer { $0.requestReadTimeout = .milliseconds(500) }
        try await withLiveServer(server) { server in
            // Taken before connecting: the server's timer starts when it accepts the connection, after this.
            let start = ContinuousClock.now
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: server.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            try await channel.executeThenClose { _, outbound in
                try await outbound.write(ByteBuffer(string: "GET /alive HTTP/1.1\r\nHost: localhost\r\nX-Slow: "))
                // One byte every 50 ms: an idle timeout would never fire.
                while channel.channel.isActive, ContinuousClock.now - start < .seconds(10) {
                    try? await outbound.write(ByteBuffer(string: "a"))
                    try await Task.sleep(for: .milliseconds(50))
                    #expect(try await server.get("/alive").status == 200)
                }
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(500))
            #expect(elapsed < .seconds(5), "disconnected after the read timeout")
        }
    }

    @Test("a long poll is not cut by the read timeout")
    func longPollOutlivesReadTimeout() async throws {
        let server = makeServer { $0.requestReadTimeout = .milliseconds(300) }
        try await withLiveServer(server) { server in
            _ = try await server.post("/v2/leases/k", json(["holder": "a", "ttl_ms": 60_000]))
            let answer = try await server.post("/v2/leases/k", json(["holder": "b", "ttl_ms": 1000, "wait_ms": 1000]))
            #expect(answer.status == 409)
        }
    }
}
