import AsyncHTTPClient
import Baton
import BatonServer
import Foundation
import Logging
import NIOHTTP1
import Synchronization
import Testing

@testable import BatonServer

/// `GET /`, the status page, and the `access_token` query parameter its event streams authenticate with.
/// (The page itself runs in headless Chromium in scripts/test: scripts/lib/statuspage.sh.)
@Suite("HTTP service: the status page")
struct StatusPageTests {
    static let secret = "page+token/with=signs"
    /// `secret`, percent-encoded for a query.
    static let encoded = "page%2Btoken%2Fwith%3Dsigns"

    @Test("/ answers the page as HTML without a token, even with authentication on", arguments: [false, true])
    func page(authenticated: Bool) async throws {
        let server = makeServer { if authenticated { $0.authToken = Self.secret } }
        try await server.test(.router) { client in
            let answer = try await client.get("/")
            #expect(answer.status == 200)
            #expect(answer.headers["content-type"] == "text/html; charset=utf-8")
            #expect(answer.headers["content-security-policy"]?.contains("default-src 'none'") == true)
            #expect(answer.headers["content-security-policy"]?.contains("connect-src 'self'") == true)
            #expect(answer.headers["referrer-policy"] == "no-referrer")
            #expect(answer.body.hasPrefix("<!doctype html>"))
            #expect(answer.body.contains("<title>Baton status</title>"))
            #expect(answer.body.contains("const MAX_STREAMS = \(StatusPage.maxStreams);"))
            #expect(!answer.body.contains(Self.secret))
            // Like the other open paths, / tells its methods without a token.
            #expect(try await client.call("POST", "/", body: nil, headers: []).status == 405)
        }
    }

    @Test("the page sets data as text only, and loads nothing from elsewhere")
    func pageSafety() {
        let page = StatusPage.html
        for unsafe in [
            "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "http://", "https://",
        ] {
            #expect(!page.contains(unsafe), "the page uses \(unsafe)")
        }
        #expect(page.contains("textContent"))
        #expect(page.split(separator: "\n").count < 400)
    }

    @Test("a watch takes the token as access_token, and refuses a wrong one with 401")
    func watchQueryToken() async throws {
        try await withLiveServer(makeServer { $0.authToken = Self.secret }) { server in
            let response = try await server.open("/v2/leases/jobs%2Fpage/watch?access_token=\(Self.encoded)")
            #expect(response.status.code == 200)
            var events = EventStreamReader(response)
            let vacant = try #require(try await events.nextLeader())
            #expect(vacant["key"] as? String == "jobs/page")
            let bearer = [("Authorization", "Bearer \(Self.secret)")]
            let acquired = try await server.post(
                "/v2/leases/jobs%2Fpage", json(["holder": "a", "ttl_ms": 60_000]), headers: bearer)
            let leader = try #require(try await events.nextLeader()?["leader"] as? [String: Any])
            #expect(leader["holder"] as? String == "a")
            #expect((leader["token"] as? NSNumber)?.int64Value == (try token(acquired)))

            for wrong in ["wrong", "\(Self.encoded)x", ""] {
                let refused = try await server.get("/v2/leases/jobs%2Fpage/watch?access_token=\(wrong)")
                #expect(refused.status == 401, "\(wrong)")
                #expect(refused.errorMessage.contains("not valid"), "\(refused)")
                #expect(!refused.body.contains("page"), "\(refused)")
            }
            // The header wins when both come: a wrong header is not rescued by a right query token.
            let both = try await server.get(
                "/v2/leases/k/watch?access_token=\(Self.encoded)", headers: [("Authorization", "Bearer wrong")])
            #expect(both.status == 401)
        }
    }

    @Test("no route but the watch takes access_token")
    func queryTokenElsewhere() async throws {
        try await makeServer { $0.authToken = Self.secret }.test(.router) { client in
            let query = "access_token=\(Self.encoded)"
            for path in [
                "/v2/leases/k?\(query)", "/v2/leases?\(query)", "/v2/rounds/s?\(query)", "/metrics?\(query)",
                "/readyz?\(query)", "/api/v1/elected/s/r?\(query)", "/v2/leases/k/watch/more?\(query)",
            ] {
                let refused = try await client.get(path)
                #expect(refused.status == 401, "\(path): \(refused)")
                #expect(refused.errorMessage.contains("only by GET /v2/leases/{key}/watch"), "\(path): \(refused)")
            }
            let post = try await client.post("/v2/leases/k?\(query)", json(["holder": "a", "ttl_ms": 1000]))
            #expect(post.status == 401)
            #expect(
                try await client.get("/v2/leases/k", headers: [("Authorization", "Bearer \(Self.secret)")]).status
                    == 404
            )
        }
    }

    @Test("a scoped token in the query keeps its scope")
    func scopedQueryToken() async throws {
        let policy = try AccessPolicy(
            json: Data(#"{"tokens": [{"name": "team-a", "token": "team-a-token", "read": ["team-a/"]}]}"#.utf8))
        try await withLiveServer(makeServer { $0.access = policy }) { server in
            let allowed = try await server.open("/v2/leases/team-a%2Fjob/watch?access_token=team-a-token")
            #expect(allowed.status.code == 200)
            var events = EventStreamReader(allowed)
            #expect(try await events.nextLeader()?["key"] as? String == "team-a/job")
            let refused = try await server.get("/v2/leases/team-b%2Fjob/watch?access_token=team-a-token")
            #expect(refused.status == 403)
            #expect(try refused.object()["code"] as? String == "forbidden")
        }
    }

    @Test("a token in the query is never logged, even at trace level")
    func queryTokenNotLogged() async throws {
        let lines = LogLines()
        var logger = Logger(label: "baton.test") { _ in lines }
        logger.logLevel = .trace
        var configuration = BatonHTTPServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.authToken = Self.secret
        let server = BatonHTTPServer(store: .memory(), configuration: configuration, logger: logger)
        try await withLiveServer(server) { server in
            let stream = try await server.open("/v2/leases/k/watch?access_token=\(Self.encoded)")
            #expect(stream.status.code == 200)
            var events = EventStreamReader(stream)
            _ = try await events.nextLeader()
            #expect(try await server.get("/v2/leases/k/watch?access_token=\(Self.encoded)x").status == 401)
            #expect(try await server.get("/v2/leases?access_token=\(Self.encoded)").status == 401)
            #expect(try await server.get("/nope?access_token=\(Self.encoded)").status == 401)
        }
        let logged = lines.all
        #expect(!logged.isEmpty)
        for line in logged {
            #expect(!line.contains("page+token") && !line.contains(Self.encoded), "\(line)")
        }
    }

    @Test("the watch route is told apart by its path")
    func watchPath() {
        #expect(BearerTokenMiddleware.isWatch("/v2/leases/k/watch"))
        #expect(BearerTokenMiddleware.isWatch("/v2/leases/team-a%2Fk/watch"))
        #expect(!BearerTokenMiddleware.isWatch("/v2/leases/k"))
        #expect(!BearerTokenMiddleware.isWatch("/v2/leases/k/watch/x"))
        #expect(!BearerTokenMiddleware.isWatch("/v2/rounds/k/watch"))
        #expect(!BearerTokenMiddleware.isWatch("/v1/leases/k/watch"))
    }
}

/// Every line logged through it, with the logger's and the call's metadata, as text.
private struct LogLines: LogHandler {
    private let lines = Lines()
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var all: [String] { lines.storage.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let text = "\(event.level) \(event.message) \(metadata) \(event.metadata ?? [:])"
        lines.storage.withLock { $0.append(text) }
    }

    private final class Lines: Sendable {
        let storage = Mutex<[String]>([])
    }
}
