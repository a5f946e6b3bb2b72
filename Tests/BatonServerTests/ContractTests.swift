@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Foundation
import HTTPTypes
import Testing

@testable import BatonServer

/// The service keeps to what `docs/openapi.json` states: 405 with `Allow` for a method a path lacks, the rules of
/// names and of `X-Baton-Candidate`, and answers of exactly the documented fields. Every check reads the document,
/// so a route added later is held to it too.
@Suite("HTTP service: the contract of docs/openapi.json")
struct ContractTests {
    /// The methods every documented path is asked with.
    static let probes = ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "QUERY"]

    /// Every documented path (parameters filled in) with its documented methods.
    static func documentedPaths() throws -> [(path: String, methods: Set<String>)] {
        let paths = try #require(try OpenAPITests.document()["paths"] as? [String: [String: Any]])
        return paths.map { template, item in
            let path = template.split(separator: "/", omittingEmptySubsequences: false).map { segment in
                segment.hasPrefix("{") ? "p" : String(segment)
            }.joined(separator: "/")
            return (path, Set(item.keys.map { $0.uppercased() }).intersection(probes))
        }
    }

    @Test("a documented path asked with a method it does not have is a 405 whose Allow lists the documented ones")
    func methodNotAllowed() async throws {
        let paths = try Self.documentedPaths()
        try await makeServer().test(.router) { client in
            var probed = 0
            for (path, methods) in paths {
                let allow = methods.sorted().joined(separator: ", ")
                for method in Self.probes where !methods.contains(method) {
                    let answer = try await client.call(method, path, body: nil, headers: [])
                    #expect(answer.status == 405, "\(method) \(path): \(answer)")
                    #expect(answer.headers["allow"] == allow, "\(method) \(path)")
                    if method != "HEAD" {
                        #expect(try answer.object()["code"] as? String == "method_not_allowed")
                        #expect(answer.errorMessage.contains(allow))
                    }
                    probed += 1
                }
            }
            #expect(probed > 50)
        }
    }

    @Test("every response of every operation is explicit: no `default`, and a schema for every body")
    func explicitResponses() throws {
        let document = try OpenAPITests.document()
        let paths = try #require(document["paths"] as? [String: [String: [String: Any]]])
        let shared = try #require((document["components"] as? [String: Any])?["responses"] as? [String: Any])
        var responses = 0
        for (path, operations) in paths {
            for (method, operation) in operations {
                let answers = try #require(operation["responses"] as? [String: [String: Any]])
                #expect(answers["default"] == nil, "\(method) \(path) has a catch-all default response")
                for (status, answer) in answers {
                    let resolved: [String: Any]
                    if let reference = answer["$ref"] as? String {
                        let name = try #require(reference.split(separator: "/").last.map(String.init))
                        resolved = try #require(shared[name] as? [String: Any], "\(reference)")
                    } else {
                        resolved = answer
                    }
                    let content = resolved["content"] as? [String: [String: Any]] ?? [:]
                    for (mediaType, body) in content {
                        #expect(body["schema"] != nil, "\(method) \(path) \(status) \(mediaType) has no schema")
                    }
                    responses += 1
                }
            }
        }
        #expect(responses > 50)
    }

    @Test("a path that is not documented stays a 404, whatever the method")
    func unknownPath() async throws {
        try await makeServer().test(.router) { client in
            for path in ["/nope", "/v2/nope/k", "/v2/leases/k/watch/more", "/api/v1/elect/s"] {
                for method in ["GET", "PATCH"] {
                    let answer = try await client.call(method, path, body: nil, headers: [])
                    #expect(answer.status == 404, "\(method) \(path): \(answer)")
                    #expect(answer.headers["allow"] == nil)
                }
            }
        }
    }

    @Test("with authentication on, a 405 needs the token except on the open paths")
    func methodNotAllowedWithAuthentication() async throws {
        try await makeServer { $0.authToken = "t" }.test(.live) { client in
            #expect(try await client.call("PATCH", "/v2/leases/k", body: nil, headers: []).status == 401)
            let bearer = [("Authorization", "Bearer t")]
            let answer = try await client.call("PATCH", "/v2/leases/k", body: nil, headers: bearer)
            #expect(answer.status == 405)
            #expect(answer.headers["allow"] == "DELETE, GET, POST, PUT")
            #expect(try await client.call("POST", "/alive", body: nil, headers: []).status == 405)
        }
    }

    @Test("a literal segment wins over a parameter when the method table matches a path, as in the router")
    func methodTable() {
        let table = RouteMethodTable([
            RouteDescription(method: .get, path: "/a/{x}", statuses: [200]),
            RouteDescription(method: .delete, path: "/a/{x}", statuses: [200]),
            RouteDescription(method: .post, path: "/a/b", statuses: [200]),
            RouteDescription(method: .get, path: "/{y}/c", statuses: [200]),
        ])
        #expect(table.methods(forPath: "/a/b") == [.post])
        #expect(table.methods(forPath: "/a/z") == [.get, .delete])
        #expect(table.methods(forPath: "/a/c") == [.get, .delete])
        #expect(table.methods(forPath: "/q/c") == [.get])
        #expect(table.methods(forPath: "/a") == nil)
        #expect(table.methods(forPath: "/a/b/c") == nil)
        #expect(table.methods(forPath: "//a//b/") == [.post])
    }

    @Test("X-Baton-Candidate is checked whenever it is sent, and is printable ASCII")
    func candidateHeader() async throws {
        try await makeServer().test(.router) { client in
            let long = String(repeating: "h", count: 257)
            let overLong = try await client.get("/api/v1/elect/s/r?candidate=a", headers: [("X-Baton-Candidate", long)])
            #expect(overLong.status == 400)
            #expect(overLong.errorMessage.contains("X-Baton-Candidate is 257 bytes long"), "\(overLong)")
            let nonASCII = try await client.get("/api/v1/elect/s/r", headers: [("X-Baton-Candidate", "hôst")])
            #expect(nonASCII.status == 400)
            #expect(nonASCII.errorMessage.contains("printable ASCII"), "\(nonASCII)")
            let tab = try await client.get("/api/v1/elect/s/r", headers: [("X-Baton-Candidate", "a\tb")])
            #expect(tab.status == 400)
            #expect(tab.errorMessage.contains("U+0009"), "\(tab)")

            let both = try await client.get("/api/v1/elect/s/r?candidate=hôst", headers: [("X-Baton-Candidate", "b")])
            #expect(both.status == 202)
            #expect(try await client.get("/api/v1/elected/s/r").body == "hôst")
            let header = try await client.get("/api/v1/elect/s/r2", headers: [("X-Baton-Candidate", "host b")])
            #expect(header.status == 202)
            #expect(header.headers["x-baton-candidate"] == "host b")
        }
    }

    @Test("the documented patterns of names and of X-Baton-Candidate agree with the service's checks")
    func namePatterns() throws {
        let components = try #require(try OpenAPITests.document()["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        let name = try #require(schemas["Name"] as? [String: Any])
        let parameters = try #require(components["parameters"] as? [String: [String: Any]])
        let header = try #require(parameters["candidateHeader"]?["schema"] as? [String: Any])
        let samples = [
            "a", "jobs/cleaner", "a b", "é", "日本", "🙂", "\u{A0}", "\u{2028}", "\u{200B}", "", "a\u{0}", "\u{1F}",
            "\u{7F}", "\u{80}", "\u{85}", "\u{9F}", "a\n", "\n", "\t", String(repeating: "x", count: 256),
            String(repeating: "x", count: 257),
        ]
        for sample in samples {
            let valid = (try? BatonValidation.name(sample, "name")) != nil
            #expect(try Self.matches(name, sample) == valid, "name \(sample.debugDescription)")
            let validHeader = valid && sample.unicodeScalars.allSatisfy(\.isASCII)
            #expect(try Self.matches(header, sample) == validHeader, "header \(sample.debugDescription)")
        }
    }

    @Test("lease answers carry remaining_ms counted from the answer, after the time the store took")
    func remainingMilliseconds() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await makeServer(store: LeaseStore(store)).test(.router) { client in
            let fast = try await client.post("/v2/leases/k", json(["holder": "a", "ttl_ms": 10_000])).object()
            let fastRemaining = try #require(fast["remaining_ms"] as? Int)
            #expect((1...10_000).contains(fastRemaining))

            store.setFault(.latency(.milliseconds(400)), for: .operation(.acquire))
            let slow = try await client.post("/v2/leases/s", json(["holder": "a", "ttl_ms": 10_000])).object()
            #expect(slow["ttl_ms"] as? Int == 10_000)
            #expect(try #require(slow["remaining_ms"] as? Int) <= 9_600)

            store.setFault(.latency(.milliseconds(400)), for: .operation(.renew))
            let renewBody = json(["holder": "a", "token": fast["token"] as? Int ?? 0, "ttl_ms": 2_000])
            let renewed = try await client.put("/v2/leases/k", renewBody).object()
            #expect(renewed["ttl_ms"] as? Int == 2_000)
            let renewedRemaining = try #require(renewed["remaining_ms"] as? Int)
            #expect((0...1_600).contains(renewedRemaining))
        }
    }

    @Test("answers have exactly the fields of their documented schemas")
    func answerFields() async throws {
        let schemas = try #require(
            (try OpenAPITests.document()["components"] as? [String: Any])?["schemas"] as? [String: Any])
        func fields(_ schema: String) throws -> (required: Set<String>, all: Set<String>) {
            let object = try #require(schemas[schema] as? [String: Any], "\(schema)")
            #expect(object["additionalProperties"] as? Bool == false, "\(schema) is closed")
            let properties = try #require(object["properties"] as? [String: Any])
            return (Set(object["required"] as? [String] ?? []), Set(properties.keys))
        }
        func check(_ answer: [String: Any], _ schema: String) throws {
            let (required, all) = try fields(schema)
            #expect(required.isSubset(of: answer.keys), "\(schema): \(answer)")
            #expect(Set(answer.keys).isSubset(of: all), "\(schema): \(answer)")
        }
        try await withLiveServer(makeServer()) { server in
            var events = EventStreamReader(try await server.open("/v2/leases/k/watch"))
            let empty = try #require(try await events.nextLeader())
            let lease = try await server.post("/v2/leases/k", json(["holder": "a", "ttl_ms": 10_000])).object()
            try check(lease, "Lease")
            try check(try await server.get("/v2/leases/k").object(), "Leader")
            let change = try #require(try await events.nextLeader())
            for object in [empty, change] {
                try check(object, "LeaderChange")
                if let leader = object["leader"] as? [String: Any] { try check(leader, "LeaderSummary") }
            }
            try check(try await server.get("/healthz").object(), "Status")
        }
    }

    /// Whether `value` is valid for a string schema of `minLength`, `maxLength`, `pattern` and `not`
    /// (lengths in characters, as JSON Schema counts them: Unicode scalars; a pattern matches anywhere).
    static func matches(_ schema: [String: Any], _ value: String) throws -> Bool {
        let count = value.unicodeScalars.count
        if let minimum = schema["minLength"] as? Int, count < minimum { return false }
        if let maximum = schema["maxLength"] as? Int, count > maximum { return false }
        if let pattern = schema["pattern"] as? String {
            let regex = try NSRegularExpression(pattern: pattern)
            if regex.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) == nil { return false }
        }
        if let excluded = schema["not"] as? [String: Any], try matches(excluded, value) { return false }
        return true
    }
}
