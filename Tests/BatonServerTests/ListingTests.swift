import Baton
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import BatonServer

/// `GET /v2/leases?prefix=P` and `GET /v2/rounds/{system}`.
@Suite("HTTP service: listings")
struct ListingTests {
    @Test(
        "the held leases under a prefix, sorted, with holder, token, metadata and time left",
        arguments: Transport.allCases)
    func leases(transport: Transport) async throws {
        try await makeServer().test(transport) { client in
            for (key, holder, metadata) in [
                ("team-a/b", "host-2", nil), ("team-a/a", "host-1", "http://10.0.0.1:8080"), ("team-a", "host-3", nil),
                ("team-ab/x", "host-4", nil), ("team-a/é", "host-5", nil),
            ] {
                var body: [String: Any] = ["holder": holder, "ttl_ms": 60_000]
                if let metadata { body["metadata"] = metadata }
                let path = "/v2/leases/" + key.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                #expect(try await client.post(path, json(body)).status == 200)
            }
            let released = try await client.post("/v2/leases/team-a%2Fgone", json(["holder": "h", "ttl_ms": 60_000]))
            let gone = try token(released)
            #expect(
                try await client.delete("/v2/leases/team-a%2Fgone", json(["holder": "h", "token": gone])).status == 204)

            let answer = try await client.get("/v2/leases?prefix=team-a%2F")
            #expect(answer.status == 200)
            let object = try answer.object()
            #expect(object["prefix"] as? String == "team-a/")
            #expect(object["truncated"] as? Bool == false)
            let leases = try #require(object["leases"] as? [[String: Any]])
            #expect(leases.map { $0["key"] as? String } == ["team-a/a", "team-a/b", "team-a/é"])
            let first = try #require(leases.first)
            #expect(first["holder"] as? String == "host-1")
            #expect(first["metadata"] as? String == "http://10.0.0.1:8080")
            #expect((first["token"] as? NSNumber)?.int64Value ?? 0 > 0)
            #expect(first["ttl_ms"] as? Int == 60_000)
            let remaining = try #require(first["remaining_ms"] as? Int)
            #expect(remaining > 0 && remaining <= 60_000)
            #expect(leases[1]["metadata"] is NSNull)

            let all = try await client.get("/v2/leases")
            let allKeys = try #require(try all.object()["leases"] as? [[String: Any]]).map { $0["key"] as? String }
            #expect(allKeys == ["team-a", "team-a/a", "team-a/b", "team-a/é", "team-ab/x"])

            let limited = try await client.get("/v2/leases?prefix=team-a&limit=0002").object()
            #expect(limited["truncated"] as? Bool == true)
            #expect((limited["leases"] as? [[String: Any]])?.map { $0["key"] as? String } == ["team-a", "team-a/a"])

            let none = try await client.get("/v2/leases?prefix=nobody%2F").object()
            #expect((none["leases"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("the kept rounds of a system, newest first, with winner and completion")
    func rounds() async throws {
        try await makeServer().test(.router) { client in
            #expect(try await client.get("/api/v1/elect/nightly/2026-01-01?candidate=a").status == 202)
            #expect(try await client.get("/api/v1/complete/nightly/2026-01-01?candidate=a").status == 200)
            #expect(try await client.get("/api/v1/elect/nightly/2026-01-02?candidate=b").status == 202)
            #expect(try await client.get("/api/v1/elect/nightly-other/2026-01-03?candidate=c").status == 202)

            let answer = try await client.get("/v2/rounds/nightly")
            #expect(answer.status == 200)
            let object = try answer.object()
            #expect(object["system"] as? String == "nightly")
            #expect(object["truncated"] as? Bool == false)
            let rounds = try #require(object["rounds"] as? [[String: Any]])
            #expect(rounds.map { $0["round"] as? String } == ["2026-01-02", "2026-01-01"])
            #expect(rounds[0]["winner"] as? String == "b")
            #expect(rounds[0]["completed_by"] is NSNull)
            #expect(rounds[1]["winner"] as? String == "a")
            #expect(rounds[1]["completed_by"] as? String == "a")

            let one = try await client.get("/v2/rounds/nightly?limit=1").object()
            #expect(one["truncated"] as? Bool == true)
            #expect((one["rounds"] as? [[String: Any]])?.count == 1)
            let empty = try await client.get("/v2/rounds/never").object()
            #expect((empty["rounds"] as? [Any])?.isEmpty == true)
        }
    }

    @Test(
        "bad prefixes and limits are 400 with a JSON error",
        arguments: [
            "/v2/leases?prefix=a%07b", "/v2/leases?limit=0", "/v2/leases?limit=10001", "/v2/leases?limit=abc",
            "/v2/leases?limit=", "/v2/leases?limit=-1", "/v2/leases?prefix=" + String(repeating: "p", count: 257),
            "/v2/rounds/nightly?limit=1001", "/v2/rounds/nightly?limit=1.5", "/v2/rounds/a%00b",
            "/v2/leases?limit=99999999999999999999999", "/v2/leases?limit=%2B5",
        ]
    )
    func badInput(path: String) async throws {
        try await makeServer().test(.router) { client in
            let answer = try await client.get(path)
            #expect(answer.status == 400, "\(path)")
            #expect(try answer.object()["code"] as? String == "invalid_argument", "\(path)")
        }
    }

    @Test("a scope asks the store only for readable prefixes inside the requested one")
    func storePrefixes() {
        #expect(AccessScope.unrestricted.readablePrefixes(within: "x/") == ["x/"])
        let scope = AccessScope(read: ["team-a/", "team-a/jobs/", "team-b/"])
        #expect(scope.readablePrefixes(within: "") == ["team-a/", "team-b/"])
        #expect(scope.readablePrefixes(within: "team-a/jobs/x") == ["team-a/jobs/x"])
        #expect(scope.readablePrefixes(within: "team") == ["team-a/", "team-b/"])
        #expect(scope.readablePrefixes(within: "team-c/").isEmpty)
        #expect(AccessScope(read: []).readablePrefixes(within: "").isEmpty)
        #expect(scope.canRead("team-a/x") && !scope.canRead("team-c/x") && !scope.canRead("team-a"))
    }

    @Test("a listing shows only what the request's read scope allows")
    func scopedListing() async throws {
        // A server with tokens (its routes check scopes); the scope comes from the middleware below, not a token.
        let server = makeServer { $0.authToken = "unused-token" }
        let router = Router(context: BatonRequestContext.self)
        router.add(middleware: ScopeMiddleware(scope: AccessScope(read: ["team-a/"])))
        for route in server.routeTable() {
            router.on(RouterPath(route.description.path), method: route.description.method, use: route.handler)
        }
        try await Application(router: router).test(.router) { client in
            let client = TestingCaller(client: client)
            for key in ["team-a%2Fx", "team-b%2Fy", "team-ab"] {
                #expect(
                    try await client.post("/v2/leases/\(key)", json(["holder": "h", "ttl_ms": 60_000])).status == 200)
            }
            for path in ["/v2/leases", "/v2/leases?prefix=team", "/v2/leases?prefix=team-a%2F"] {
                let leases = try await client.get(path).object()["leases"] as? [[String: Any]]
                #expect(leases?.map { $0["key"] as? String } == ["team-a/x"], "\(path)")
            }
            let hidden = try await client.get("/v2/leases?prefix=team-b%2F").object()["leases"] as? [Any]
            #expect(hidden?.isEmpty == true)
            #expect(try await client.get("/v2/rounds/team-b%2Fnightly").status == 403)
            #expect(try await client.get("/v2/rounds/team-a%2Fnightly").status == 200)
        }
    }
}

/// Sets the access scope of every read, as an authentication middleware would.
private struct ScopeMiddleware: RouterMiddleware {
    let scope: AccessScope

    func handle(
        _ request: Request,
        context: BatonRequestContext,
        next: (Request, BatonRequestContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        // Reads only: the test's leases are taken with full access.
        if request.method == .get { context.access = scope }
        return try await next(request, context)
    }
}
