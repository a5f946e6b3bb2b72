import Baton
import BatonHummingbird
import BatonTestKit
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// `FencingMiddleware`: a leader whose term ended while it was paused sends a write with its old token after the
/// next leader wrote with a larger one. The guarded service answers 409 and applies nothing; the same service without
/// the middleware applies the late write.
@Suite("Fencing middleware")
struct FencingMiddlewareTests {
    typealias Fencing = FencingMiddleware<BasicRequestContext>

    /// The writes a service applied, in order.
    final class Applied: Sendable {
        let notes = Mutex<[String]>([])
        var all: [String] { notes.withLock { $0 } }
    }

    func service(guarded: Bool, applied: Applied) -> some ApplicationProtocol {
        let router = Router()
        if guarded { router.add(middleware: Fencing()) }
        router.post("/invoices") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1024)
            applied.notes.withLock { $0.append(String(buffer: body)) }
            return .ok
        }
        router.get("/invoices") { _, _ -> String in "\(applied.all.count)" }
        return Application(router: router)
    }

    /// Two real terms of one key: the first expires while its leader is paused, the second starts after it.
    func twoTerms(key: String) async throws -> (FencingToken, FencingToken) {
        let clock = ManualClock()
        let store = LeaseStore(MemoryLeaseStore(clock: clock))
        let old = try #require(try await store.acquire(key: key, holder: "paused", ttl: .seconds(1)).lease)
        #expect(try await store.acquire(key: key, holder: "next", ttl: .seconds(1)).lease == nil)
        clock.advance(by: .seconds(2))
        let new = try #require(try await store.acquire(key: key, holder: "next", ttl: .seconds(1)).lease)
        #expect(new.token > old.token)
        return (old.token, new.token)
    }

    func post(_ client: some TestClientProtocol, key: String?, token: String?, note: String) async throws
        -> TestResponse
    {
        var headers = HTTPFields()
        if let key { headers[Fencing.keyHeader] = key }
        if let token { headers[Fencing.tokenHeader] = token }
        return try await client.execute(
            uri: "/invoices", method: .post, headers: headers, body: ByteBuffer(string: note))
    }

    @Test("a paused leader's late write is refused with 409; without the middleware it is applied")
    func lateWriteRefused() async throws {
        let (old, new) = try await twoTerms(key: "billing")
        let guarded = Applied()
        try await service(guarded: true, applied: guarded).test(.router) { client in
            #expect(try await post(client, key: "billing", token: "\(old)", note: "before the pause").status == .ok)
            #expect(try await post(client, key: "billing", token: "\(new)", note: "next leader").status == .ok)
            let late = try await post(client, key: "billing", token: "\(old)", note: "late write")
            #expect(late.status == .conflict)
            let refusal = try JSONSerialization.jsonObject(with: Data(String(buffer: late.body).utf8)) as? [String: Any]
            #expect(refusal?["error"] as? String == "stale_token")
            #expect(refusal?["resource"] as? String == "billing")
            #expect((refusal?["token"] as? NSNumber)?.int64Value == old)
            #expect((refusal?["highest"] as? NSNumber)?.int64Value == new)
            #expect((refusal?["message"] as? String)?.contains("stale fencing token \(old)") == true)
            // The same term writes on; another key's tokens are not compared.
            #expect(try await post(client, key: "billing", token: "\(new)", note: "next again").status == .ok)
            #expect(try await post(client, key: "billing#1", token: "\(old)", note: "other key").status == .ok)
        }
        #expect(guarded.all == ["before the pause", "next leader", "next again", "other key"])

        let unguarded = Applied()
        try await service(guarded: false, applied: unguarded).test(.router) { client throws in
            #expect(try await post(client, key: "billing", token: "\(old)", note: "before the pause").status == .ok)
            #expect(try await post(client, key: "billing", token: "\(new)", note: "next leader").status == .ok)
            #expect(try await post(client, key: "billing", token: "\(old)", note: "late write").status == .ok)
        }
        #expect(unguarded.all == ["before the pause", "next leader", "late write"])
    }

    @Test("a write without its token or key, or with a malformed token, is refused with a clear error; reads pass")
    func badWrites() async throws {
        let applied = Applied()
        try await service(guarded: true, applied: applied).test(.router) { client in
            let noToken = try await post(client, key: "billing", token: nil, note: "x")
            #expect(noToken.status.code == 428)
            #expect(String(buffer: noToken.body).contains("Baton-Token"))
            let noKey = try await post(client, key: nil, token: "3", note: "x")
            #expect(noKey.status == .badRequest)
            #expect(String(buffer: noKey.body).contains("Baton-Key"))
            let malformed = try await post(client, key: "billing", token: "3; DROP", note: "x")
            #expect(malformed.status == .badRequest)
            #expect(String(buffer: malformed.body).contains("invalid_token"))
            let read = try await client.execute(uri: "/invoices", method: .get)
            #expect(read.status == .ok)
        }
        #expect(applied.all.isEmpty)
    }
}
