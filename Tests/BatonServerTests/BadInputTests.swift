import Baton
import BatonServer
import Foundation
import Testing

/// Bad input: every case is a 400 with a JSON error that names the problem, and the service keeps serving.
@Suite("HTTP service: bad input")
struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var path: String
        var body: String?
        /// A fragment the error message must contain.
        var mentions: String

        var testDescription: String { name }
    }

    static let longName = String(repeating: "x", count: 257)

    static let cases: [Case] = [
        Case(
            name: "malformed JSON", method: "POST", path: "/v2/leases/k", body: #"{"holder": "a", "#,
            mentions: "not valid JSON"),
        Case(name: "empty body", method: "POST", path: "/v2/leases/k", body: "", mentions: "body is empty"),
        Case(
            name: "a body that is not an object", method: "POST", path: "/v2/leases/k", body: "[1, 2]",
            mentions: "must be a JSON object, not an array"),
        Case(
            name: "missing holder", method: "POST", path: "/v2/leases/k", body: #"{"ttl_ms": 1000}"#,
            mentions: #"field "holder" is missing"#),
        Case(
            name: "missing ttl_ms", method: "POST", path: "/v2/leases/k", body: #"{"holder": "a"}"#,
            mentions: #"field "ttl_ms" is missing"#),
        Case(
            name: "holder of the wrong type", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": 7, "ttl_ms": 1000}"#, mentions: #"field "holder" must be a string, not a whole number"#),
        Case(
            name: "ttl_ms as a string", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": "1000"}"#, mentions: #"field "ttl_ms" must be a whole number"#),
        Case(
            name: "ttl_ms as a fraction", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 1000.5}"#, mentions: "not a fraction"),
        Case(
            name: "ttl_ms as a boolean", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": true}"#, mentions: "not a boolean"),
        Case(
            name: "ttl_ms below 100 ms", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 99}"#, mentions: "from 100 to 3600000 milliseconds"),
        Case(
            name: "ttl_ms above an hour", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 3600001}"#, mentions: "from 100 to 3600000 milliseconds"),
        Case(
            name: "negative wait_ms", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 1000, "wait_ms": -1}"#, mentions: #"field "wait_ms" is -1"#),
        Case(
            name: "wait_ms above five minutes", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 1000, "wait_ms": 300001}"#, mentions: "from 0 to 300000 milliseconds"),
        Case(
            name: "metadata of the wrong type", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 1000, "metadata": {"a": 1}}"#,
            mentions: #"field "metadata" must be a string, not an object"#),
        Case(
            name: "metadata over 4 KiB", method: "POST", path: "/v2/leases/k",
            body: json(["holder": "a", "ttl_ms": 1000, "metadata": String(repeating: "m", count: 4097)]),
            mentions: "metadata is 4097 bytes long"),
        Case(
            name: "holder over 256 bytes", method: "POST", path: "/v2/leases/k",
            body: json(["holder": longName, "ttl_ms": 1000]), mentions: "holder is 257 bytes long"),
        Case(
            name: "empty holder", method: "POST", path: "/v2/leases/k", body: #"{"holder": "", "ttl_ms": 1000}"#,
            mentions: "holder is empty"),
        Case(
            name: "holder with a control character", method: "POST", path: "/v2/leases/k",
            body: #"{"holder": "a\u0007b", "ttl_ms": 1000}"#, mentions: "control character U+0007"),
        Case(
            name: "key over 256 bytes", method: "POST", path: "/v2/leases/\(longName)",
            body: #"{"holder": "a", "ttl_ms": 1000}"#, mentions: "key is 257 bytes long"),
        Case(
            name: "key with a control character", method: "GET", path: "/v2/leases/a%01b", body: nil,
            mentions: "control character U+0001"),
        Case(
            name: "key with a malformed escape", method: "GET", path: "/v2/leases/a%zzb", body: nil,
            mentions: "malformed percent-escape"),
        Case(
            name: "renew without a token", method: "PUT", path: "/v2/leases/k",
            body: #"{"holder": "a", "ttl_ms": 1000}"#, mentions: #"field "token" is missing"#),
        Case(
            name: "renew with a string token", method: "PUT", path: "/v2/leases/k",
            body: #"{"holder": "a", "token": "1", "ttl_ms": 1000}"#, mentions: #"field "token" must be a whole number"#),
        Case(
            name: "release without a holder", method: "DELETE", path: "/v2/leases/k", body: #"{"token": 1}"#,
            mentions: #"field "holder" is missing"#),
        Case(
            name: "body over the limit", method: "POST", path: "/v2/leases/k",
            body: json(["holder": "a", "ttl_ms": 1000, "padding": String(repeating: "p", count: 20_000)]),
            mentions: "the limit is 16384 bytes"),
        Case(
            name: "v1 system over 256 bytes", method: "GET", path: "/api/v1/elect/\(longName)/r?candidate=a",
            body: nil, mentions: "system is 257 bytes long"),
        Case(
            name: "v1 round with a control character", method: "GET", path: "/api/v1/elected/s/r%0A",
            body: nil, mentions: "round"),
        Case(
            name: "v1 candidate over 256 bytes", method: "GET", path: "/api/v1/elect/s/r?candidate=\(longName)",
            body: nil, mentions: "candidate is 257 bytes long"),
        Case(
            name: "v1 empty candidate", method: "POST", path: "/api/v1/complete/s/r?candidate=", body: nil,
            mentions: "candidate is empty"),
        Case(
            name: "v1 without any identity in-process", method: "GET", path: "/api/v1/elect/s/r", body: nil,
            mentions: "?candidate=ID"),
    ]

    @Test("bad input is a 400 with a JSON error naming the problem", arguments: cases)
    func badInput(_ testCase: Case) async throws {
        try await makeServer().test(.router) { client in
            let answer = try await client.call(testCase.method, testCase.path, body: testCase.body, headers: [])
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.headers["content-type"] == "application/json")
            #expect(try answer.object()["code"] as? String == "invalid_argument")
            #expect(answer.errorMessage.contains(testCase.mentions), "\(answer.errorMessage)")
            #expect(try await client.get("/alive").status == 200)
        }
    }

    @Test("over a live connection, every bad request is answered and the service keeps serving")
    func liveBadInput() async throws {
        try await makeServer().test(.live) { client in
            for testCase in Self.cases where !testCase.name.contains("in-process") {
                let answer = try await client.call(testCase.method, testCase.path, body: testCase.body, headers: [])
                #expect(answer.status == 400, "\(testCase.name): \(answer)")
                #expect(answer.errorMessage.contains(testCase.mentions), "\(testCase.name): \(answer.errorMessage)")
            }
            #expect(try await client.post("/v2/leases/k", json(["holder": "a", "ttl_ms": 1000])).status == 200)
        }
    }

    @Test("a body over the limit is refused from its Content-Length, before it is read")
    func declaredLength() async throws {
        try await withLiveServer(makeServer { $0.maxBodyBytes = 1024 }) { server in
            let big = json(["holder": "a", "ttl_ms": 1000, "padding": String(repeating: "p", count: 200_000)])
            let answer = try await server.post("/v2/leases/k", big)
            #expect(answer.status == 400)
            #expect(answer.errorMessage.contains("the limit is 1024 bytes"))
            #expect(try await server.get("/alive").status == 200)
        }
    }
}
