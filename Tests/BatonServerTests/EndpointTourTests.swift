import Baton
import BatonServer
import Foundation
import Testing

/// Every endpoint once, in-process (the router) and over a live connection, with named candidates.
@Suite("HTTP service: every endpoint")
struct EndpointTourTests {
    @Test("v1 rounds: elect, elected, complete, completed, alive", arguments: Transport.allCases)
    func v1(transport: Transport) async throws {
        try await makeServer().test(transport) { client in
            #expect(try await client.get("/api/v1/elected/nightly/r1").status == 204)
            #expect(try await client.get("/api/v1/completed/nightly/r1").status == 204)

            let won = try await client.get("/api/v1/elect/nightly/r1?candidate=host-a")
            #expect(won.status == 202)
            #expect(won.headers["x-baton-candidate"] == "host-a")
            #expect(try await client.get("/api/v1/elect/nightly/r1?candidate=host-a").status == 202)
            let lost = try await client.get("/api/v1/elect/nightly/r1", headers: [("X-Baton-Candidate", "host-b")])
            #expect(lost.status == 204)
            #expect(lost.body == "")

            let elected = try await client.get("/api/v1/elected/nightly/r1")
            #expect(elected.status == 200)
            #expect(elected.body == "host-a")
            #expect(elected.headers["content-type"]?.hasPrefix("text/plain") == true)

            let notWinner = try await client.get("/api/v1/complete/nightly/r1?candidate=host-b")
            #expect(notWinner.status == 403)
            #expect(try notWinner.object()["code"] as? String == "not_winner")
            #expect(try await client.post("/api/v1/complete/nightly/r1?candidate=host-a").status == 200)
            #expect(try await client.get("/api/v1/complete/nightly/r1?candidate=host-a").status == 200)
            let completed = try await client.get("/api/v1/completed/nightly/r1")
            #expect(completed.status == 200)
            #expect(completed.body == "host-a")

            #expect(try await client.get("/alive").status == 200)
        }
    }

    @Test("v2 leases: acquire, get, renew, release", arguments: Transport.allCases)
    func v2(transport: Transport) async throws {
        try await makeServer().test(transport) { client in
            #expect(try await client.get("/v2/leases/jobs%2Fcleaner").status == 404)

            let acquired = try await client.post(
                "/v2/leases/jobs%2Fcleaner", json(["holder": "a", "ttl_ms": 10_000, "metadata": "http://a:8080"]))
            #expect(acquired.status == 200)
            let lease = try acquired.object()
            #expect(lease["key"] as? String == "jobs/cleaner")
            #expect(lease["holder"] as? String == "a")
            #expect(lease["ttl_ms"] as? Int == 10_000)
            #expect(lease["metadata"] as? String == "http://a:8080")
            let first = try token(acquired)

            let held = try await client.post("/v2/leases/jobs%2Fcleaner", json(["holder": "b", "ttl_ms": 10_000]))
            #expect(held.status == 409)
            let leader = try #require(try held.object()["leader"] as? [String: Any])
            #expect(leader["holder"] as? String == "a")
            #expect((leader["token"] as? NSNumber)?.int64Value == first)
            #expect(leader["metadata"] as? String == "http://a:8080")

            let current = try await client.get("/v2/leases/jobs%2Fcleaner")
            #expect(current.status == 200)
            #expect(try current.object()["holder"] as? String == "a")
            #expect(try token(current) == first)

            let renewed = try await client.put(
                "/v2/leases/jobs%2Fcleaner", json(["holder": "a", "token": first, "ttl_ms": 20_000]))
            #expect(renewed.status == 200)
            #expect(try token(renewed) == first)
            #expect(try renewed.object()["ttl_ms"] as? Int == 20_000)
            #expect(try renewed.object()["metadata"] as? String == "http://a:8080", "metadata kept on renew")

            let staleRenew = try await client.put(
                "/v2/leases/jobs%2Fcleaner", json(["holder": "a", "token": first + 1, "ttl_ms": 20_000]))
            #expect(staleRenew.status == 409)
            #expect(try staleRenew.object()["code"] as? String == "lost")

            #expect(
                try await client.delete("/v2/leases/jobs%2Fcleaner", json(["holder": "b", "token": first])).status
                    == 409)
            #expect(
                try await client.delete("/v2/leases/jobs%2Fcleaner", json(["holder": "a", "token": first])).status
                    == 204)
            #expect(
                try await client.delete("/v2/leases/jobs%2Fcleaner", json(["holder": "a", "token": first])).status
                    == 409, "the term is over")
            #expect(try await client.get("/v2/leases/jobs%2Fcleaner").status == 404)

            let next = try await client.post("/v2/leases/jobs%2Fcleaner", json(["holder": "b", "ttl_ms": 10_000]))
            #expect(next.status == 200)
            #expect(try token(next) > first, "a new term gets a larger token")
        }
    }

    @Test("health, readiness and metrics", arguments: Transport.allCases)
    func operations(transport: Transport) async throws {
        try await makeServer().test(transport) { client in
            let health = try await client.get("/healthz")
            #expect(health.status == 200)
            #expect(try health.object()["status"] as? String == "ok")
            let ready = try await client.get("/readyz")
            #expect(ready.status == 200)
            #expect(try ready.object()["status"] as? String == "ready")

            _ = try await client.get("/api/v1/elect/s/r?candidate=c")
            _ = try await client.get("/api/v1/elect/s/r?candidate=d")
            let metrics = try await client.get("/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(
                metrics.body.contains(
                    #"baton_http_requests_total{route="/api/v1/elect/{system}/{round}",method="GET",status="202"} 1"#))
            #expect(
                metrics.body.contains(
                    #"baton_http_requests_total{route="/api/v1/elect/{system}/{round}",method="GET",status="204"} 1"#))
            #expect(metrics.body.contains(#"baton_http_requests_total{route="/readyz",method="GET",status="200"} 1"#))
            #expect(
                metrics.body.contains(
                    #"baton_http_request_duration_seconds_count{route="/api/v1/elect/{system}/{round}",method="GET",status="202"} 1"#
                ))
            #expect(metrics.body.contains("# TYPE baton_http_request_duration_seconds histogram"))
        }
    }

    @Test("an unknown path is a JSON 404", arguments: Transport.allCases)
    func unknownPath(transport: Transport) async throws {
        try await makeServer().test(transport) { client in
            let answer = try await client.get("/v3/nothing")
            #expect(answer.status == 404)
            #expect(try answer.object()["code"] as? String == "not_found")
        }
    }
}
