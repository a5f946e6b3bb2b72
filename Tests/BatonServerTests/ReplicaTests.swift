import AsyncHTTPClient
import Foundation
import Testing

/// Two `baton serve` processes on one store, as replicas behind a load balancer: they keep no state of their own.
@Suite("baton serve: replicas on one store", .serialized)
struct ReplicaTests {
    @Test("on one SQLite file: acquired through one replica, renewed, re-acquired and released through the other")
    func sqliteReplicas() async throws {
        try await withTemporaryDirectory { directory in
            try await replicas(store: "sqlite:" + directory.appendingPathComponent("baton.db").path)
        }
    }

    @Test("on one etcd: acquired through one replica, renewed, re-acquired and released through the other")
    func etcdReplicas() async throws {
        let url = ProcessInfo.processInfo.environment["BATON_TEST_ETCD_URL"]
        if url == nil, ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record("CI=true but BATON_TEST_ETCD_URL is not set")
        }
        guard let url else { return }
        try await replicas(store: url)
    }

    private func replicas(store: String) async throws {
        try await withHTTPClient { client in
            let first = try ServeProcess(["--host", "127.0.0.1", "--port", "0", "--store", store])
            defer { first.stop() }
            let second = try ServeProcess(["--host", "127.0.0.1", "--port", "0", "--store", store])
            defer { second.stop() }
            let a = RemoteService(port: try await first.waitUntilListening(), client: client)
            let b = RemoteService(port: try await second.waitUntilListening(), client: client)
            let path = "/v2/leases/replica-\(UUID().uuidString.prefix(8))"

            let held = try await a.post(path, json(["holder": "client", "ttl_ms": 60_000, "metadata": "one"]))
            #expect(held.status == 200)
            let term = try token(held)
            let seen = try await b.get(path)
            #expect(seen.status == 200 && (try? token(seen)) == term, "replica B sees \(seen)")
            let renewed = try await b.put(path, json(["holder": "client", "token": term, "ttl_ms": 60_000]))
            #expect(renewed.status == 200, "a renew through replica B: \(renewed)")
            #expect((try? token(renewed)) == term)
            let again = try await b.post(path, json(["holder": "client", "ttl_ms": 60_000, "metadata": "two"]))
            #expect(again.status == 200, "the holder acquiring again through replica B: \(again)")
            #expect((try? token(again)) == term, "the holder's own term, not a new one behind itself")
            #expect(try await a.put(path, json(["holder": "client", "token": term, "ttl_ms": 60_000])).status == 200)

            // A client that asks once for the held key (no wait_ms), and goes away.
            let refused = try await a.post(path, json(["holder": "asked-once", "ttl_ms": 60_000]))
            #expect(refused.status == 409)

            let released = try await b.delete(path, json(["holder": "client", "token": term]))
            #expect(released.status == 204, "a release through replica B: \(released)")
            #expect(try await a.get(path).status == 404, "replica A still sees a leader after the release")
            let next = try await a.post(path, json(["holder": "next", "ttl_ms": 60_000]))
            #expect(next.status == 200, "the next client is not queued behind the one that asked once: \(next)")
            #expect((try? token(next)).map { $0 > term } == true)
            let leader = try await b.get(path)
            #expect((try? leader.object()["holder"] as? String) == "next")
            #expect(try await a.put(path, json(["holder": "client", "token": term, "ttl_ms": 60_000])).status == 409)

            // A client that queued (a long poll that ran out) and went away blocks the key for about a ttl at most.
            let polled = try await b.post(path, json(["holder": "queued", "ttl_ms": 1_000, "wait_ms": 1_500]))
            #expect(polled.status == 409)
            try await Task.sleep(for: .seconds(3))
            let nextTerm = try token(next)
            #expect(try await b.delete(path, json(["holder": "next", "token": nextTerm])).status == 204)
            let after = try await a.post(path, json(["holder": "after", "ttl_ms": 60_000]))
            #expect(after.status == 200, "3 s after a 1 s long poll ended, its client still blocks the key: \(after)")
        }
    }
}
