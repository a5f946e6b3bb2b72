import AsyncHTTPClient
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The real `baton serve` process: durability over `kill -9`, graceful shutdown, configuration.
@Suite("baton serve: the process", .serialized)
struct ServeCommandTests {
    @Test("kill -9 loses nothing acknowledged: rounds and leases are as they were, and tokens keep rising")
    func killRestart() async throws {
        try await withTemporaryDirectory { directory in
            let store = "sqlite:" + directory.appendingPathComponent("baton.db").path
            try await withHTTPClient { client in
                let first = try ServeProcess(["--host", "127.0.0.1", "--port", "0", "--store", store])
                defer { first.stop() }
                let a = RemoteService(port: try await first.waitUntilListening(), client: client)
                #expect(try await a.get("/api/v1/elect/nightly/r1?candidate=host-a").status == 202)
                #expect(try await a.get("/api/v1/elect/nightly/r1?candidate=host-b").status == 204)
                #expect(try await a.post("/api/v1/complete/nightly/r1?candidate=host-a").status == 200)
                #expect(try await a.get("/api/v1/elect/nightly/r2?candidate=host-b").status == 202)
                let held = try await a.post("/v2/leases/db", json(["holder": "a", "ttl_ms": 600_000, "metadata": "m"]))
                #expect(held.status == 200)
                let heldToken = try token(held)
                let released = try await a.post("/v2/leases/cron", json(["holder": "x", "ttl_ms": 600_000]))
                let releasedToken = try token(released)
                #expect(
                    try await a.delete("/v2/leases/cron", json(["holder": "x", "token": releasedToken])).status == 204)
                let taken = try await a.post("/v2/leases/cron", json(["holder": "y", "ttl_ms": 600_000]))
                let takenToken = try token(taken)
                #expect(takenToken > releasedToken)

                first.send(SIGKILL)
                #expect(try await first.waitForExit() == SIGKILL)

                let second = try ServeProcess(["--host", "127.0.0.1", "--port", "0", "--store", store])
                defer { second.stop() }
                let b = RemoteService(port: try await second.waitUntilListening(), client: client)
                #expect(try await b.get("/api/v1/elected/nightly/r1").body == "host-a")
                #expect(try await b.get("/api/v1/completed/nightly/r1").body == "host-a")
                #expect(try await b.get("/api/v1/elected/nightly/r2").body == "host-b")
                #expect(try await b.get("/api/v1/elect/nightly/r1?candidate=host-c").status == 204)
                #expect(try await b.get("/api/v1/elect/nightly/r1?candidate=host-a").status == 202)

                let leader = try await b.get("/v2/leases/db")
                #expect(leader.status == 200)
                #expect(try leader.object()["holder"] as? String == "a")
                #expect(try token(leader) == heldToken)
                #expect(try leader.object()["metadata"] as? String == "m")
                let renewed = try await b.put(
                    "/v2/leases/db", json(["holder": "a", "token": heldToken, "ttl_ms": 600_000]))
                #expect(renewed.status == 200)
                #expect(try await b.post("/v2/leases/db", json(["holder": "z", "ttl_ms": 1000])).status == 409)

                #expect(
                    try await b.delete("/v2/leases/cron", json(["holder": "y", "token": takenToken])).status == 204)
                let next = try await b.post("/v2/leases/cron", json(["holder": "w", "ttl_ms": 600_000]))
                #expect(next.status == 200)
                #expect(try token(next) > takenToken, "tokens keep rising across a restart")

                second.send(SIGTERM)
                #expect(try await second.waitForExit() == 0)
            }
        }
    }

    @Test("configured from the environment; SIGTERM answers long polls, ends streams and exits 0")
    func environmentAndGracefulShutdown() async throws {
        try await withTemporaryDirectory { directory in
            let tokenFile = directory.appendingPathComponent("token")
            let secret = "tok-\(UUID().uuidString)"
            try Data("\(secret)\n".utf8).write(to: tokenFile)
            try await withHTTPClient { client in
                let serve = try ServeProcess(
                    [],
                    environment: [
                        "BATON_HOST": "127.0.0.1", "BATON_PORT": "0", "BATON_STORE": "memory:",
                        "BATON_AUTH_TOKEN_FILE": tokenFile.path,
                    ])
                defer { serve.stop() }
                let service = RemoteService(port: try await serve.waitUntilListening(), client: client)
                let startLines = serve.output.contents.split(separator: "\n")
                #expect(startLines.count == 1, "one line at start: \(startLines)")
                #expect(startLines.first?.contains("store memory:") == true)
                #expect(startLines.first?.contains("authentication bearer token") == true)

                #expect(try await service.get("/alive").status == 200)
                #expect(try await service.get("/v2/leases/k").status == 401)
                let bearer = [("Authorization", "Bearer \(secret)")]
                #expect(
                    try await service.post("/v2/leases/k", json(["holder": "a", "ttl_ms": 60_000]), headers: bearer)
                        .status == 200)

                let stream = try await service.open("/v2/leases/k/watch", headers: bearer)
                var events = EventStreamReader(stream)
                _ = try #require(try await events.nextLeader())
                async let waiting = service.post(
                    "/v2/leases/k", json(["holder": "b", "ttl_ms": 1000, "wait_ms": 120_000]), headers: bearer)
                try await Task.sleep(for: .milliseconds(300))

                let start = ContinuousClock.now
                serve.send(SIGTERM)
                #expect(try await waiting.status == 409)
                while try await events.next() != nil {}
                #expect(try await serve.waitForExit() == 0)
                #expect(ContinuousClock.now - start < .seconds(10))
                #expect(serve.output.contents.contains("stopped"))
                #expect(!serve.output.contents.contains(secret), "the token is never logged")
            }
        }
    }

    @Test("bad settings exit 2 with a message, and the port in use is reported")
    func badSettings() async throws {
        let port = try ServeProcess(["--port", "70000", "--store", "memory:"])
        #expect(try await port.waitForExit() == 2)
        #expect(port.output.contents.contains("--port must be from 0 to 65535"))

        let token = try ServeProcess(["--auth-token-file", "/nonexistent/token", "--store", "memory:"])
        #expect(try await token.waitForExit() == 2)
        #expect(token.output.contents.contains("--auth-token-file: cannot read /nonexistent/token"))

        let streams = try ServeProcess(["--max-streams-per-key", "0", "--store", "memory:"])
        #expect(try await streams.waitForExit() == 2)
        #expect(streams.output.contents.contains("--max-streams-per-key must be at least 1, got 0"))

        let writeTimeout = try ServeProcess(["--write-timeout", "soon", "--store", "memory:"])
        #expect(try await writeTimeout.waitForExit() == 2)
        #expect(writeTimeout.output.contents.contains("--write-timeout"))

        let level = try ServeProcess(["--store", "memory:"], environment: ["BATON_LOG_LEVEL": "loud"])
        #expect(try await level.waitForExit() == 2)
        #expect(level.output.contents.contains("--log-level"))

        let first = try ServeProcess(["--host", "127.0.0.1", "--port", "0", "--store", "memory:"])
        defer { first.stop() }
        let used = try await first.waitUntilListening()
        let second = try ServeProcess(["--host", "127.0.0.1", "--port", "\(used)", "--store", "memory:"])
        defer { second.stop() }
        #expect(try await second.waitForExit() == 2)
        #expect(second.output.contents.contains("cannot listen on 127.0.0.1:\(used)"))
        first.send(SIGTERM)
        #expect(try await first.waitForExit() == 0)
    }
}
