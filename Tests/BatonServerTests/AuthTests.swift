import Baton
import BatonServer
import Foundation
import Testing

@testable import BatonServer

/// Optional bearer-token authentication.
@Suite("HTTP service: authentication")
struct AuthTests {
    static let token = "s3cr3t-token-value"

    @Test("with a token configured, requests need it, except /alive and /healthz", arguments: Transport.allCases)
    func bearerToken(transport: Transport) async throws {
        try await makeServer { $0.authToken = Self.token }.test(transport) { client in
            let missing = try await client.get("/v2/leases/k")
            #expect(missing.status == 401)
            #expect(try missing.object()["code"] as? String == "unauthorized")
            #expect(missing.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            #expect(!missing.body.contains(Self.token))

            #expect(try await client.get("/v2/leases/k", headers: [("Authorization", "Bearer wrong")]).status == 401)
            #expect(
                try await client.get("/v2/leases/k", headers: [("Authorization", "Bearer \(Self.token)x")]).status
                    == 401)
            #expect(try await client.get("/v2/leases/k", headers: [("Authorization", "Basic abc")]).status == 401)
            #expect(try await client.get("/api/v1/elect/s/r?candidate=a").status == 401)
            #expect(try await client.get("/metrics").status == 401)
            #expect(try await client.get("/readyz").status == 401)

            let bearer = [("Authorization", "Bearer \(Self.token)")]
            #expect(try await client.get("/v2/leases/k", headers: bearer).status == 404)
            #expect(try await client.get("/api/v1/elect/s/r?candidate=a", headers: bearer).status == 202)
            #expect(try await client.get("/readyz", headers: [("Authorization", "bearer \(Self.token)")]).status == 200)
            #expect(try await client.get("/metrics", headers: bearer).body.contains(#"status="401""#))

            #expect(try await client.get("/alive").status == 200)
            #expect(try await client.get("/healthz").status == 200)
        }
    }

    @Test("without a token configured, nothing is asked")
    func noToken() async throws {
        try await makeServer().test(.router) { client in
            let answer = try await client.get("/v2/leases/k")
            #expect(answer.status == 404)
        }
    }

    @Test("the comparison is exact")
    func comparison() {
        let expected = Array("abc".utf8)
        #expect(AccessPolicy.constantTimeEquals(Array("abc".utf8), expected))
        #expect(!AccessPolicy.constantTimeEquals(Array("abd".utf8), expected))
        #expect(!AccessPolicy.constantTimeEquals(Array("ab".utf8), expected))
        #expect(!AccessPolicy.constantTimeEquals(Array("abcd".utf8), expected))
        #expect(!AccessPolicy.constantTimeEquals([], expected))
    }
}
