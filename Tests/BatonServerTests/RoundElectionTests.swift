import Baton
import BatonServer
import BatonTestKit
import Foundation
import Testing

/// v1 over a live port: gone's default identity, concurrency, and store failures.
@Suite("HTTP service: v1 rounds")
struct RoundElectionTests {
    @Test("the default identity is the remote ip:port, and the winner asking again wins again")
    func remoteIdentity() async throws {
        try await makeServer().test(.live) { client in
            // HummingbirdTesting's live client keeps one connection, so every request has the same ip:port.
            let first = try await client.get("/api/v1/elect/backup/2026-11-23")
            #expect(first.status == 202)
            let identity = try #require(first.headers["x-baton-candidate"])
            #expect(identity.hasPrefix("127.0.0.1:") || identity.hasPrefix("[::1]:"))
            #expect(try await client.get("/api/v1/elect/backup/2026-11-23").status == 202)
            #expect(try await client.get("/api/v1/elected/backup/2026-11-23").body == identity)
            #expect(try await client.get("/api/v1/elect/backup/2026-11-23?candidate=other").status == 204)
            // gone's rule for anonymous callers: the first completion is recorded.
            #expect(try await client.post("/api/v1/complete/backup/2026-11-23").status == 200)
            #expect(try await client.get("/api/v1/completed/backup/2026-11-23").body == identity)
            let again = try await client.get("/api/v1/complete/backup/2026-11-23?candidate=other")
            #expect(again.status == 400)
            #expect(try again.object()["code"] as? String == "already_completed")
            #expect(try again.object()["completed_by"] as? String == identity)
        }
    }

    @Test("different connections are different anonymous candidates")
    func connectionsDiffer() async throws {
        try await withLiveServer(makeServer()) { server in
            let a = try await server.get("/api/v1/elect/s/r", headers: [("Connection", "close")])
            let b = try await server.get("/api/v1/elect/s/r", headers: [("Connection", "close")])
            #expect([a.status, b.status].sorted() == [202, 204])
            #expect(a.headers["x-baton-candidate"] != b.headers["x-baton-candidate"])
        }
    }

    @Test("50 concurrent elect calls for one round: exactly one 202, and losers are answered at once")
    func concurrentElect() async throws {
        try await withLiveServer(makeServer()) { server in
            let start = ContinuousClock.now
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await server.get("/api/v1/elect/cleaner/2026-11-23T08:00?candidate=host-\(index)").status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            let elapsed = ContinuousClock.now - start
            #expect(statuses.count == 50)
            #expect(statuses.filter { $0 == 202 }.count == 1)
            #expect(statuses.filter { $0 == 204 }.count == 49)
            #expect(elapsed < .seconds(1.5), "gone made each loser wait about 1.5 s; Baton answers at once")
            let winner = try await server.get("/api/v1/elected/cleaner/2026-11-23T08:00").body
            #expect(winner.hasPrefix("host-"))
            #expect(try await server.get("/api/v1/elect/cleaner/2026-11-23T08:00?candidate=\(winner)").status == 202)
        }
    }

    @Test("a store failure is a 500 naming the identity, and the round keeps a possible winner")
    func storeFailureKeepsAWinner() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        try await makeServer(store: LeaseStore(store)).test(.router) { client in
            // The store fails before applying the claim: nobody won, so anyone's retry can win.
            store.setFault(.fail, for: .operation(.claim))
            let failed = try await client.get("/api/v1/elect/s/r1?candidate=a")
            #expect(failed.status == 500)
            #expect(try failed.object()["code"] as? String == "store_unavailable")
            #expect(try failed.object()["retry"] as? Bool == true)
            store.setFault(nil, for: .operation(.claim))
            #expect(try await client.get("/api/v1/elect/s/r1?candidate=b").status == 202)

            // The store applies the claim but the answer is lost: the 500 names the identity that may have won,
            // and a retry as that identity wins (claims are idempotent per identity).
            store.setFault(.loseReply, for: .operation(.claim))
            let lostReply = try await client.get("/api/v1/elect/s/r2", headers: [("X-Baton-Candidate", "c")])
            #expect(lostReply.status == 500)
            #expect(lostReply.headers["x-baton-candidate"] == "c")
            #expect(try lostReply.object()["candidate"] as? String == "c")
            store.setFault(nil, for: .operation(.claim))
            #expect(try await client.get("/api/v1/elect/s/r2?candidate=c").status == 202)
            #expect(try await client.get("/api/v1/elect/s/r2?candidate=d").status == 204)

            store.setFault(.fail, for: .operation(.winner))
            #expect(try await client.get("/api/v1/elected/s/r2").status == 500)
            store.setFault(.fail, for: .operation(.complete))
            #expect(try await client.get("/api/v1/complete/s/r2?candidate=c").status == 500)
            store.setFault(.fail, for: .operation(.completion))
            #expect(try await client.get("/api/v1/completed/s/r2").status == 500)
            store.clearFaults()
            #expect(try await client.get("/api/v1/complete/s/r2?candidate=c").status == 200)
        }
    }

    @Test("a store that does not answer is abandoned after the store timeout: 500 timeout")
    func storeTimeout() async throws {
        let store = FaultInjectingStore(wrapping: MemoryLeaseStore())
        let server = makeServer(store: LeaseStore(store)) { $0.storeTimeout = .milliseconds(200) }
        try await server.test(.router) { client in
            store.setFault(.hang, for: .operation(.claim))
            let start = ContinuousClock.now
            let answer = try await client.get("/api/v1/elect/s/r?candidate=a")
            #expect(answer.status == 500)
            #expect(try answer.object()["code"] as? String == "timeout")
            #expect(ContinuousClock.now - start < .seconds(5))
            store.clearFaults()
            #expect(try await client.get("/api/v1/elect/s/r?candidate=a").status == 202)
        }
    }
}
