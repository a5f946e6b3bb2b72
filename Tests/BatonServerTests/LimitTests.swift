import Baton
import BatonServer
import Foundation
import Testing

/// The caps on connections, event streams and long polls, and the write timeout for clients that stop reading.
@Suite("HTTP service: limits")
struct LimitTests {
    @Test("event streams over the per-key cap get 429, over the global cap 503, both with Retry-After and counted")
    func streamCaps() async throws {
        let server = makeServer { $0.limits = .init(maxStreams: 3, maxStreamsPerKey: 2) }
        try await withLiveServer(server) { server in
            var open: [RawConnection] = []
            func openStream(_ key: String) async throws {
                let stream = try await RawConnection.open(port: server.port)
                try await stream.sendRequest("GET", "/v2/leases/\(key)/watch")
                #expect(try await stream.status() == 200)
                open.append(stream)
            }
            try await openStream("a")
            try await openStream("a")

            let perKey = try await server.get("/v2/leases/a/watch")
            #expect(perKey.status == 429)
            #expect(perKey.headers["retry-after"] == "1")
            #expect(try perKey.object()["code"] as? String == "over_limit")
            #expect(try perKey.object()["limit"] as? String == "streams_per_key")
            #expect(perKey.errorMessage.contains("at most 2"))

            try await openStream("b")
            let global = try await server.get("/v2/leases/c/watch")
            #expect(global.status == 503)
            #expect(global.headers["retry-after"] == "5")
            #expect(try global.object()["limit"] as? String == "streams")

            #expect(try await metric(server, #"baton_http_rejected_total{limit="streams_per_key"}"#) == 1)
            #expect(try await metric(server, #"baton_http_rejected_total{limit="streams"}"#) == 1)
            #expect(try await metric(server, "baton_http_open_streams") == 3)

            // A closed stream gives its slot back: a stream of `a` is accepted again.
            await open.removeFirst().close()
            try await eventually("the closed stream's slot is free") {
                try await metric(server, "baton_http_open_streams") == 2
            }
            let again = try await RawConnection.open(port: server.port)
            try await again.sendRequest("GET", "/v2/leases/a/watch")
            #expect(try await again.status() == 200)
            for stream in open + [again] { await stream.close() }
        }
    }

    @Test("long polls over the per-key cap get 429, over the global cap 503; a plain 409 is not a long poll")
    func longPollCaps() async throws {
        let server = makeServer { $0.limits = .init(maxLongPolls: 2, maxLongPollsPerKey: 1) }
        try await withLiveServer(server) { server in
            for key in ["k1", "k2", "k3"] {
                #expect(
                    try await server.post("/v2/leases/\(key)", json(["holder": "h", "ttl_ms": 60_000])).status == 200)
            }
            let waiting = json(["holder": "w", "ttl_ms": 60_000, "wait_ms": 60_000])
            let first = try await RawConnection.open(port: server.port)
            try await first.sendRequest("POST", "/v2/leases/k1", body: waiting)
            try await eventually("the first long poll waits") {
                try await metric(server, "baton_http_waiting_long_polls") == 1
            }

            let perKey = try await server.post("/v2/leases/k1", waiting)
            #expect(perKey.status == 429)
            #expect(perKey.headers["retry-after"] == "1")
            #expect(try perKey.object()["limit"] as? String == "long_polls_per_key")
            // Without wait_ms the answer is the usual 409, whatever the caps.
            #expect(try await server.post("/v2/leases/k1", json(["holder": "x", "ttl_ms": 1000])).status == 409)

            let second = try await RawConnection.open(port: server.port)
            try await second.sendRequest("POST", "/v2/leases/k2", body: waiting)
            try await eventually("the second long poll waits") {
                try await metric(server, "baton_http_waiting_long_polls") == 2
            }
            let global = try await server.post("/v2/leases/k3", waiting)
            #expect(global.status == 503)
            #expect(global.headers["retry-after"] == "5")
            #expect(try global.object()["limit"] as? String == "long_polls")
            #expect(try await metric(server, #"baton_http_rejected_total{limit="long_polls_per_key"}"#) == 1)
            #expect(try await metric(server, #"baton_http_rejected_total{limit="long_polls"}"#) == 1)

            // The first long poll is answered when k1 is released, and its slot is free again.
            let held = try await server.get("/v2/leases/k1")
            _ = try await server.delete("/v2/leases/k1", json(["holder": "h", "token": try token(held)]))
            #expect(try await first.status() == 200)
            try await eventually("the answered long poll's slot is free") {
                try await metric(server, "baton_http_waiting_long_polls") == 1
            }
            await first.close()
            await second.close()
        }
    }

    @Test("a connection over the cap is answered 503 with Retry-After and closed; a freed slot is used again")
    func connectionCap() async throws {
        let server = makeServer { $0.limits = .init(maxConnections: 2) }
        try await withLiveServer(server) { server in
            // Each connection is admitted once it has been answered.
            var held: [RawConnection] = []
            for _ in 0..<2 {
                let connection = try await RawConnection.open(port: server.port)
                try await connection.sendRequest("GET", "/alive")
                #expect(try await connection.status() == 200)
                held.append(connection)
            }

            let refused = try await RawConnection.open(port: server.port)
            try await refused.sendRequest("GET", "/alive")
            let answer = try await refused.wait(for: "the refusal and the close") { _, closed in closed }
            #expect(answer.hasPrefix("HTTP/1.1 503"))
            let lower = answer.lowercased()
            #expect(lower.contains("retry-after: 5\r\n"))
            #expect(lower.contains("connection: close\r\n"))
            #expect(answer.contains(#""limit":"connections""#))

            await held.removeFirst().close()
            // Until the closed connection's slot is seen free, a new connection is refused (and counted) too.
            var refusals = 1
            let metrics = try await eventuallyValue("a connection is admitted again") { () async throws -> String? in
                let connection = try await RawConnection.open(port: server.port)
                try await connection.sendRequest("GET", "/metrics")
                let text = try await connection.wait(for: "an answer") { text, closed in
                    closed || (text.contains("baton_http_open_connections") && text.contains("connections\"}"))
                }
                await connection.close()
                guard text.hasPrefix("HTTP/1.1 200") else {
                    refusals += 1
                    return nil
                }
                return text
            }
            #expect(value(in: metrics, of: #"baton_http_rejected_total{limit="connections"}"#) == Double(refusals))
            for connection in held { await connection.close() }
        }
    }

    @Test("a client that stops reading is disconnected after the write timeout, and its stream slot is freed")
    func slowReader() async throws {
        let server = makeServer {
            $0.limits = .init(maxStreams: 1, writeTimeout: .milliseconds(500), streamBufferSize: 4)
        }
        try await withLiveServer(server) { server in
            let slow = try await RawConnection.open(port: server.port, reading: false, receiveBuffer: 4096)
            try await slow.sendRequest("GET", "/v2/leases/busy/watch")
            try await eventually("the slow client's stream is open") {
                try await metric(server, "baton_http_open_streams") == 1
            }
            #expect(try await server.get("/v2/leases/other/watch").status == 503)

            // Leader changes with 4 KiB of metadata each, until the server gives up on the client: its buffers
            // fill, a write stays unsent, and the write timeout closes the connection.
            let metadata = String(repeating: "m", count: 4096)
            let start = ContinuousClock.now
            var cycles = 0
            do {
                while try await metric(server, "baton_http_open_streams") != 0 {
                    guard ContinuousClock.now - start < .seconds(60) else {
                        throw TestFailure("the slow reader was not disconnected within 60 s (\(cycles) changes)")
                    }
                    let acquired = try await server.post(
                        "/v2/leases/busy", json(["holder": "h\(cycles)", "ttl_ms": 60_000, "metadata": metadata]))
                    _ = try await server.delete(
                        "/v2/leases/busy", json(["holder": "h\(cycles)", "token": try token(acquired)]))
                    cycles += 1
                }
            } catch {
                // Reset the connection, so that the stream's blocked write fails and the service can shut down.
                await slow.close()
                throw error
            }
            #expect(try await metric(server, "baton_http_write_timeouts_total") == 1)

            // The slot is free: a new stream is accepted.
            let next = try await RawConnection.open(port: server.port)
            try await next.sendRequest("GET", "/v2/leases/other/watch")
            #expect(try await next.status() == 200)
            await next.close()

            // And the slow client's connection was closed by the server: reading it now ends at its end.
            slow.startReading()
            try await slow.wait(for: "the server's close", within: .seconds(30)) { _, closed in closed }
        }
    }
}

/// The value of the sample `series` (a name, with its labels if it has any) in `/metrics`, or nil if absent.
func metric(_ server: LiveServer, _ series: String) async throws -> Double? {
    value(in: try await server.get("/metrics").body, of: series)
}

/// The value of the sample `series` in Prometheus text, or nil.
func value(in text: String, of series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1).trimmingCharacters(in: .whitespaces))
    }
    return nil
}

/// Waits until `condition` holds, checking every 20 ms, for at most `limit`.
func eventually(
    _ what: String,
    within limit: Duration = .seconds(10),
    _ condition: () async throws -> Bool
) async throws {
    _ = try await eventuallyValue(what, within: limit) { try await condition() ? true : nil }
}

/// Waits until `attempt` gives a value, trying every 20 ms, for at most `limit`.
@discardableResult
func eventuallyValue<Value>(
    _ what: String,
    within limit: Duration = .seconds(10),
    _ attempt: () async throws -> Value?
) async throws -> Value {
    let deadline = ContinuousClock.now + limit
    while true {
        if let value = try await attempt() { return value }
        guard ContinuousClock.now < deadline else { throw TestFailure("\(what): not within \(limit)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}
