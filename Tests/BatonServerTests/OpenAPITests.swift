import Baton
import BatonServer
import Foundation
import HTTPTypes
import Testing

/// `docs/openapi.json` documents exactly the routes the service registers, with their statuses.
@Suite("HTTP service: the OpenAPI document")
struct OpenAPITests {
    static func document() throws -> [String: Any] {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("docs/openapi.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The documented operations: "METHOD path" → documented status codes.
    static func documentedOperations() throws -> [String: Set<Int>] {
        let document = try document()
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var operations: [String: Set<Int>] = [:]
        for (path, methods) in paths {
            for (method, operation) in methods {
                let operation = try #require(operation as? [String: Any])
                let responses = try #require(operation["responses"] as? [String: Any])
                operations["\(method.uppercased()) \(path)"] = Set(responses.keys.compactMap { Int($0) })
            }
        }
        return operations
    }

    @Test("every registered route is documented with its statuses, and nothing else is")
    func routesMatch() throws {
        let document = try Self.document()
        #expect(document["openapi"] as? String == "3.1.0")
        let documented = try Self.documentedOperations()
        // With authentication on, so that 401 is among the statuses of every route that is not open.
        let routes = makeServer { $0.authToken = "t" }.routes
        var registered: [String: Set<Int>] = [:]
        for route in routes { registered[route.description] = route.statuses }
        #expect(Set(registered.keys) == Set(documented.keys))
        for (operation, statuses) in registered {
            #expect(documented[operation] == statuses, "\(operation)")
        }
    }

    @Test("open routes are documented without security")
    func openRoutes() throws {
        let paths = try #require(try Self.document()["paths"] as? [String: [String: [String: Any]]])
        for route in makeServer().routes {
            let operation = try #require(paths[route.path]?[route.method.rawValue.lowercased()])
            let security = operation["security"] as? [Any]
            #expect((security?.isEmpty == true) == route.isOpen, "\(route)")
        }
    }

    @Test("every status the service answered in a sweep of all routes is documented")
    func observedStatusesAreDocumented() async throws {
        let documented = try Self.documentedOperations()
        let metrics = try await makeServer { $0.authToken = "t" }.test(.router) { client in
            let bearer = [("Authorization", "Bearer t")]
            let calls: [(String, String, String?, [(String, String)])] = [
                ("GET", "/api/v1/elect/s/r?candidate=a", nil, bearer),
                ("GET", "/api/v1/elect/s/r?candidate=b", nil, bearer),
                ("GET", "/api/v1/elect/s/r", nil, []),
                ("GET", "/api/v1/elected/s/r", nil, bearer),
                ("GET", "/api/v1/elected/s/none", nil, bearer),
                ("GET", "/api/v1/complete/s/r?candidate=b", nil, bearer),
                ("POST", "/api/v1/complete/s/r?candidate=a", nil, bearer),
                ("POST", "/api/v1/complete/s/r", nil, bearer),
                ("GET", "/api/v1/completed/s/r", nil, bearer),
                ("GET", "/api/v1/completed/s/none", nil, bearer),
                ("GET", "/alive", nil, []),
                ("POST", "/v2/leases/k", json(["holder": "a", "ttl_ms": 1000]), bearer),
                ("POST", "/v2/leases/k", json(["holder": "b", "ttl_ms": 1000]), bearer),
                ("POST", "/v2/leases/k", "{", bearer),
                ("PUT", "/v2/leases/k", json(["holder": "a", "token": 1, "ttl_ms": 1000]), bearer),
                ("PUT", "/v2/leases/k", json(["holder": "a", "token": 9, "ttl_ms": 1000]), bearer),
                ("GET", "/v2/leases/k", nil, bearer),
                ("DELETE", "/v2/leases/k", json(["holder": "a", "token": 9]), bearer),
                ("DELETE", "/v2/leases/k", json(["holder": "a", "token": 1]), bearer),
                ("GET", "/v2/leases/k", nil, bearer),
                ("GET", "/v2/leases/\(String(repeating: "k", count: 300))/watch", nil, bearer),
                ("GET", "/v2/leases?prefix=k", nil, bearer),
                ("GET", "/v2/leases?limit=0", nil, bearer),
                ("GET", "/v2/leases", nil, []),
                ("GET", "/v2/rounds/s", nil, bearer),
                ("GET", "/v2/rounds/s?limit=0", nil, bearer),
                ("GET", "/healthz", nil, []),
                ("GET", "/readyz", nil, bearer),
                ("GET", "/readyz", nil, []),
            ]
            for (method, path, body, headers) in calls {
                _ = try await client.call(method, path, body: body, headers: headers)
            }
            return try await client.get("/metrics", headers: bearer).body
        }
        var observed = 0
        for line in metrics.split(separator: "\n") where line.hasPrefix("baton_http_requests_total{") {
            let labels = Self.labels(line)
            guard let route = labels["route"], route != "unmatched", let method = labels["method"],
                let status = labels["status"].flatMap({ Int($0) })
            else { continue }
            observed += 1
            #expect(documented["\(method) \(route)"]?.contains(status) == true, "\(method) \(route) → \(status)")
        }
        #expect(observed >= 20)
    }

    private static func labels(_ line: Substring) -> [String: String] {
        guard let open = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}") else { return [:] }
        var labels: [String: String] = [:]
        for pair in line[line.index(after: open)..<close].split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
        }
        return labels
    }
}
