import Baton
import BatonServer
import Crypto
import Foundation
import Testing

@testable import BatonServer

/// Tokens scoped to key prefixes: what each may read and write, and the access file that gives them.
@Suite("HTTP service: access by key prefix")
struct AccessScopeTests {
    static let teamA = "team-a-token-0123456789"
    static let teamB = "team-b-token-9876543210"
    static let reader = "reader-token-5555555555"
    static let admin = "admin-token-7777777777"

    static func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

    static func sha256(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// team-a writes `team-a/`, reads `shared/`; team-b writes `team-b/`; the reader reads everything; the admin
    /// token (the single-token option) may do anything.
    static func server() throws -> BatonHTTPServer {
        let file = """
            {"tokens": [
              {"name": "team-a", "sha256": "\(sha256(teamA))", "read": ["shared/"], "write": ["team-a/"]},
              {"name": "team-b", "token": "\(teamB)", "write": ["team-b/"]},
              {"name": "reader", "sha256": "\(sha256(reader).uppercased())", "read": [""]}
            ]}
            """
        let policy = try AccessPolicy(json: Data(file.utf8))
        return makeServer {
            $0.access = policy
            $0.authToken = admin
        }
    }

    @Test(
        "a token scoped to team-a/ is answered 403 on team-b/ keys and as usual on its own",
        arguments: Transport.allCases)
    func leases(transport: Transport) async throws {
        try await Self.server().test(transport) { client in
            let a = Self.bearer(Self.teamA)
            let acquired = try await client.post(
                "/v2/leases/team-a%2Fdb", json(["holder": "h", "ttl_ms": 60_000]), headers: a)
            #expect(acquired.status == 200)
            let token = try token(acquired)
            #expect(try await client.get("/v2/leases/team-a%2Fdb", headers: a).status == 200)
            #expect(
                try await client.put(
                    "/v2/leases/team-a%2Fdb", json(["holder": "h", "token": token, "ttl_ms": 60_000]), headers: a
                )
                .status == 200)

            let b = Self.bearer(Self.teamB)
            #expect(
                try await client.post("/v2/leases/team-b%2Fdb", json(["holder": "x", "ttl_ms": 60_000]), headers: b)
                    .status == 200)
            let refused = try await client.post(
                "/v2/leases/team-b%2Fdb", json(["holder": "h", "ttl_ms": 60_000]), headers: a)
            #expect(refused.status == 403)
            #expect(try refused.object()["code"] as? String == "forbidden")
            #expect(try refused.object()["key"] as? String == "team-b/db")
            #expect(try refused.object()["access"] as? String == "write")
            #expect(refused.errorMessage.contains("team-b/db"))
            #expect(!refused.body.contains(Self.teamA))
            #expect(try await client.get("/v2/leases/team-b%2Fdb", headers: a).status == 403)
            #expect(
                try await client.put(
                    "/v2/leases/team-b%2Fdb", json(["holder": "x", "token": 1, "ttl_ms": 1000]), headers: a
                ).status == 403)
            #expect(
                try await client.delete("/v2/leases/team-b%2Fdb", json(["holder": "x", "token": 1]), headers: a).status
                    == 403)
            // The refused requests changed nothing: team-b still holds its key.
            let held = try await client.get("/v2/leases/team-b%2Fdb", headers: b)
            #expect(try held.object()["holder"] as? String == "x")
            // A prefix is bytes: team-a/ does not cover team-ab.
            #expect(try await client.get("/v2/leases/team-ab", headers: a).status == 403)

            // Reading shared/ is allowed, writing it is not.
            #expect(try await client.get("/v2/leases/shared%2Fconfig", headers: a).status == 404)
            #expect(
                try await client.post("/v2/leases/shared%2Fconfig", json(["holder": "h", "ttl_ms": 1000]), headers: a)
                    .status == 403)

            // The reader reads anything and writes nothing; the admin token does anything.
            #expect(try await client.get("/v2/leases/team-b%2Fdb", headers: Self.bearer(Self.reader)).status == 200)
            #expect(
                try await client.post(
                    "/v2/leases/r", json(["holder": "h", "ttl_ms": 1000]), headers: Self.bearer(Self.reader)
                ).status == 403)
            #expect(
                try await client.post(
                    "/v2/leases/anything", json(["holder": "h", "ttl_ms": 1000]), headers: Self.bearer(Self.admin)
                ).status == 200)

            // Without a token, or with one nobody gave: 401 whatever the key.
            #expect(try await client.get("/v2/leases/team-a%2Fdb").status == 401)
            #expect(
                try await client.get("/v2/leases/team-a%2Fdb", headers: Self.bearer("team-a-token-01234567890")).status
                    == 401)
            // Any valid token may ask for readiness; a malformed key is still a 400.
            #expect(try await client.get("/readyz", headers: b).status == 200)
            let long = try await client.get("/v2/leases/\(String(repeating: "k", count: 300))", headers: a)
            #expect(long.status == 400)
        }
    }

    @Test("a listing shows a scoped token only what it may read; a rounds listing outside it is 403")
    func listings() async throws {
        try await Self.server().test(.router) { client in
            let admin = Self.bearer(Self.admin)
            for key in ["team-a%2Fdb", "team-b%2Fdb", "shared%2Fconfig", "team-ab"] {
                #expect(
                    try await client.post("/v2/leases/\(key)", json(["holder": "h", "ttl_ms": 60_000]), headers: admin)
                        .status == 200)
            }
            let a = Self.bearer(Self.teamA)
            let listed1 = try await client.get("/v2/leases", headers: a).object()["leases"] as? [[String: Any]]
            #expect(listed1?.compactMap { $0["key"] as? String } == ["shared/config", "team-a/db"])
            let listed2 =
                try await client.get("/v2/leases?prefix=team", headers: a).object()["leases"] as? [[String: Any]]
            #expect(listed2?.compactMap { $0["key"] as? String } == ["team-a/db"])
            let listed3 =
                try await client.get("/v2/leases?prefix=team-b%2F", headers: a).object()["leases"] as? [[String: Any]]
            #expect(listed3?.compactMap { $0["key"] as? String } == [])
            let listed4 =
                try await client.get("/v2/leases?prefix=team", headers: Self.bearer(Self.teamB)).object()["leases"]
                as? [[String: Any]]
            #expect(listed4?.compactMap { $0["key"] as? String } == ["team-b/db"])
            let listed5 = try await client.get("/v2/leases", headers: admin).object()["leases"] as? [[String: Any]]
            #expect(
                listed5?.compactMap { $0["key"] as? String } == ["shared/config", "team-a/db", "team-ab", "team-b/db"])
            #expect(try await client.get("/v2/leases").status == 401)
            #expect(try await client.get("/v2/rounds/team-a%2Fnightly", headers: a).status == 200)
            #expect(try await client.get("/v2/rounds/team-b%2Fnightly", headers: a).status == 403)
        }
    }

    @Test("a watch outside the token's scope is refused before the stream starts")
    func watch() async throws {
        try await withLiveServer(try Self.server()) { server in
            let refused = try await server.call(
                "GET", "/v2/leases/team-b%2Fdb/watch", body: nil, headers: Self.bearer(Self.teamA))
            #expect(refused.status == 403)
            #expect(try refused.object()["access"] as? String == "read")

            var events = EventStreamReader(
                try await server.open("/v2/leases/shared%2Fx/watch", headers: Self.bearer(Self.teamA)))
            let first = try #require(try await events.nextLeader())
            #expect(first["key"] as? String == "shared/x")
        }
    }

    @Test("v1 rounds are scoped by system: elect and complete write it, elected and completed read it")
    func rounds() async throws {
        try await Self.server().test(.router) { client in
            let a = Self.bearer(Self.teamA)
            #expect(try await client.get("/api/v1/elect/team-a%2Fnightly/r1?candidate=h", headers: a).status == 202)
            #expect(try await client.post("/api/v1/complete/team-a%2Fnightly/r1?candidate=h", headers: a).status == 200)
            #expect(try await client.get("/api/v1/elected/team-a%2Fnightly/r1", headers: a).status == 200)
            #expect(try await client.get("/api/v1/completed/team-a%2Fnightly/r1", headers: a).status == 200)

            let refused = try await client.get("/api/v1/elect/team-b%2Fnightly/r1?candidate=h", headers: a)
            #expect(refused.status == 403)
            #expect(try refused.object()["system"] as? String == "team-b/nightly")
            #expect(try await client.get("/api/v1/complete/team-b/r1?candidate=h", headers: a).status == 403)
            #expect(try await client.post("/api/v1/complete/team-b/r1?candidate=h", headers: a).status == 403)
            #expect(try await client.get("/api/v1/elected/team-b/r1", headers: a).status == 403)
            #expect(try await client.get("/api/v1/completed/team-b/r1", headers: a).status == 403)
            // Reading a round of shared/ is allowed, electing in it is not.
            #expect(try await client.get("/api/v1/elected/shared%2Fjobs/r1", headers: a).status == 204)
            #expect(try await client.get("/api/v1/elect/shared%2Fjobs/r1?candidate=h", headers: a).status == 403)
            // Nobody was elected by the refused calls.
            #expect(try await client.get("/api/v1/elected/team-b/r1", headers: Self.bearer(Self.admin)).status == 204)
        }
    }

    @Test("what a scope allows, and the prefixes a listing should ask the store for")
    func scope() {
        let scope = AccessScope(name: "team-a", read: ["shared/", "team-a/old/"], write: ["team-a/"])
        #expect(scope.canWrite("team-a/db"))
        #expect(scope.canRead("team-a/db"), "writing implies reading")
        #expect(scope.canRead("shared/x"))
        #expect(!scope.canWrite("shared/x"))
        #expect(!scope.canRead("team-b/db"))
        #expect(!scope.canRead("team-ab"))
        #expect(!scope.canRead("shared"))
        #expect(!scope.isUnrestricted)
        #expect(AccessScope.unrestricted.canWrite("anything"))
        #expect(AccessScope.unrestricted.readablePrefixes(within: "p/") == ["p/"])

        #expect(scope.readablePrefixes == ["shared/", "team-a/"])
        #expect(scope.readablePrefixes(within: "") == ["shared/", "team-a/"])
        #expect(scope.readablePrefixes(within: "team-a/db") == ["team-a/db"])
        #expect(scope.readablePrefixes(within: "team") == ["team-a/"])
        #expect(scope.readablePrefixes(within: "team-b/") == [])
        // Keys in a listing: only what the token may read.
        let listed = ["shared/a", "team-a/db", "team-b/db", "team-ab"].filter(scope.canRead)
        #expect(listed == ["shared/a", "team-a/db"])
    }

    @Test("the access file: tokens in the clear or as SHA-256, names, prefixes")
    func file() throws {
        let policy = try AccessPolicy(
            json: Data(
                """
                {"tokens": [
                  {"name": "ops", "token": "ops-token", "read": [""]},
                  {"sha256": "\(Self.sha256("hashed"))", "write": ["jobs/"]}
                ]}
                """.utf8))
        #expect(policy.entries.count == 2)
        #expect(policy.holdsClearTokens)
        #expect(policy.scope(ofToken: "ops-token")?.name == "ops")
        #expect(policy.scope(ofToken: "ops-token")?.canRead("x") == true)
        #expect(policy.scope(ofToken: "ops-token")?.canWrite("x") == false)
        #expect(policy.scope(ofToken: "hashed")?.name == "tokens[1]")
        #expect(policy.scope(ofToken: "hashed")?.canWrite("jobs/a") == true)
        #expect(policy.scope(ofToken: "hashe") == nil)
        #expect(policy.scope(ofToken: "") == nil)

        let hashedOnly = try AccessPolicy(json: Data(#"{"tokens": [{"sha256": "\#(Self.sha256("t"))"}]}"#.utf8))
        #expect(!hashedOnly.holdsClearTokens)
        #expect(hashedOnly.scope(ofToken: "t") == AccessScope(name: "tokens[0]"))
    }

    @Test(
        "a wrong access file is refused, naming the entry and field and never a token",
        arguments: [
            ("{\"tokens\": [", "not valid JSON"),
            ("[]", "must hold a JSON object"),
            (#"{"tokens": [], "x": 1}"#, "unknown field \"x\" at the top"),
            (#"{"tokens": {}}"#, "\"tokens\" must be an array"),
            (#"{"tokens": []}"#, "\"tokens\" is empty"),
            (#"{"tokens": ["s3cret-value"]}"#, "tokens[0] must be an object, not a string"),
            (#"{"tokens": [{"name": "a", "read": [""]}]}"#, "tokens[0] \"a\": give the token as \"token\""),
            (
                #"{"tokens": [{"name": "a", "token": "s3cret-value", "sha256": "00"}]}"#,
                "tokens[0] \"a\": give either \"token\" or \"sha256\", not both"
            ),
            (#"{"tokens": [{"token": "s3cret value"}]}"#, "tokens[0]: \"token\" must be 1–4096 printable ASCII"),
            (#"{"tokens": [{"token": 12345}]}"#, "tokens[0]: \"token\" must be a string, not a whole number"),
            (#"{"tokens": [{"sha256": "s3cret-value"}]}"#, "tokens[0]: \"sha256\" must be 64 hex digits"),
            (#"{"tokens": [{"token": "s3cret-value", "wirte": []}]}"#, "tokens[0]: unknown field \"wirte\""),
            (#"{"tokens": [{"token": "s3cret-value", "read": "team-a/"}]}"#, "tokens[0]: \"read\" must be an array"),
            (
                #"{"tokens": [{"token": "s3cret-value", "write": ["a/", 3]}]}"#,
                "tokens[0]: \"write\"[1] must be a string"
            ),
            (#"{"tokens": [{"token": "s3cret-value", "write": ["a\u0001"]}]}"#, "contains a control character"),
            (#"{"tokens": [{"token": "s3cret-value", "name": ""}]}"#, "tokens[0]: \"name\" must be a string"),
            (
                #"{"tokens": [{"token": "x"}, {"name": "b", "token": "s3cret-value"}, {"name": "c", "token": "s3cret-value"}]}"#,
                "tokens[2] \"c\": the same token as tokens[1] \"b\""
            ),
        ])
    func badFile(text: String, expected: String) throws {
        let error = #expect(throws: BatonError.self) { try AccessPolicy(json: Data(text.utf8)) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("s3cret") == false, "\(error?.message ?? "")")
    }

    @Test("malformed JSON is reported with its position, not its text")
    func jsonPosition() throws {
        let error = #expect(throws: BatonError.self) {
            try AccessPolicy(json: Data("{\"tokens\": [\n  {\"token\": \"s3cret-value\" \"read\": []}\n]}".utf8))
        }
        #expect(error?.message.hasPrefix("not valid JSON: around line 2, column 28") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("s3cret") == false)
    }
}
