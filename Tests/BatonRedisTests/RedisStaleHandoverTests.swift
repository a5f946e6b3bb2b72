import Baton
import BatonRedis
import BatonTestKit
import Synchronization
import Testing

/// Two instances of the store on one server, as two `baton serve` replicas behind one address: a holder asks
/// through either. A term handed to a holder, and then taken and released by it through the other instance, must
/// not be granted again by the first one from the release's message it kept, while its connections are silent.
@Suite("Redis handed terms across instances")
struct RedisStaleHandoverTests {
    @Test("an instance cut off from the server does not grant a term its holder took and released elsewhere")
    func staleHandoverIsNotGranted() async throws {
        guard let url = try RedisTestServer.url(), let port = RedisTestServer.port(of: url) else { return }
        let proxy = try BlackholeProxy(forwardingTo: "127.0.0.1", port: port)
        defer { proxy.close() }
        // Holders ask through other instances too: a handed term is granted on the server's answer only.
        let a = LeaseStore(
            try RedisLeaseStore("redis://127.0.0.1:\(proxy.port)"),
            configuration: .init(requestTimeout: .seconds(1), holdersAskThroughOtherInstances: true))
        let b = LeaseStore(try RedisLeaseStore(url))
        try await a.withRunning { a in
            try await b.withRunning { b in
                let key = unique("stale")
                let ttl = Duration.seconds(30)
                let leader = try #require(try await b.acquire(key: key, holder: "l", ttl: ttl).lease)
                // x waits through a; y through b, behind it.
                #expect(try await a.acquire(key: key, holder: "x", ttl: ttl, waiting: true).lease == nil)
                #expect(try await b.acquire(key: key, holder: "y", ttl: ttl, waiting: true).lease == nil)
                // a follows the key, as x's elector would.
                let seen = Mutex<[String]>([])
                let follower = Task {
                    for try await info in try a.changes(key: key) { seen.withLock { $0.append(info?.holder ?? "-") } }
                }
                defer { follower.cancel() }
                try #require(try await eventually { seen.withLock { $0.last == "l" } }, "a never saw l lead")
                // l releases: the key is handed to x, and a hears of it.
                try await b.release(leader)
                try #require(try await eventually { seen.withLock { $0.last == "x" } }, "a never saw x lead")
                // a is cut off. x takes its term through b, and releases it: y leads.
                proxy.setMode(.blackhole)
                let taken = try #require(try await b.acquire(key: key, holder: "x", ttl: ttl, waiting: true).lease)
                try await b.release(taken)
                let y = try #require(try await b.acquire(key: key, holder: "y", ttl: ttl, waiting: true).lease)
                // x asks a again: a must not grant x's old term from the message it kept. Cut off, it cannot ask.
                let answer: String
                do {
                    answer = "\(try await a.acquire(key: key, holder: "x", ttl: ttl, waiting: true))"
                } catch {
                    answer = "error: \(error)"
                }
                #expect(answer.hasPrefix("error"), "a answered \(answer) while y leads with token \(y.token)")
                // Reconnected, it asks the server, which says y leads.
                proxy.setMode(.pass)
                let again = try await eventually(timeout: .seconds(20)) {
                    (try? await a.acquire(key: key, holder: "x", ttl: ttl, waiting: true)) != nil
                }
                #expect(again)
                #expect(try await a.acquire(key: key, holder: "x", ttl: ttl, waiting: true).lease == nil)
                #expect(try await b.current(key: key)?.token == y.token)
            }
        }
    }
}
