import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `baton serve` keeps the store's secrets to itself: its URL comes from a file, and a failing store's hosts, users,
/// paths and key ids are logged (redacted) but never answered.
@Suite("baton serve: secrets", .serialized)
struct ServeSecretsTests {
    @Test("a 500 and /readyz on an unreachable Redis name no host, user or password; the log has the detail")
    func redisFailure() async throws {
        try await withTemporaryDirectory { directory in
            let storeFile = directory.appendingPathComponent("store-url")
            try Data("redis://admin-user:sekret-pass@127.0.0.1:1\n".utf8).write(to: storeFile)
            try await withHTTPClient { client in
                let serve = try ServeProcess(["--host", "127.0.0.1", "--port", "0", "--store-file", storeFile.path])
                defer { serve.stop() }
                let service = RemoteService(port: try await serve.waitUntilListening(), client: client)
                let secrets = ["admin-user", "sekret-pass", "127.0.0.1"]
                try await Self.expectNoSecrets(service, secrets: secrets, log: serve.output)
                #expect(!serve.output.contents.contains("sekret-pass"), "the password is never logged")
                serve.send(SIGTERM)
                #expect(try await serve.waitForExit() == 0)
            }
        }
    }

    @Test("a 500 and /readyz on an S3 endpoint that refuses the key name no key id, endpoint, bucket or prefix")
    func s3Refusal() async throws {
        try await withRefusingS3 { port in
            try await withHTTPClient { client in
                let serve = try ServeProcess(
                    [
                        "--host", "127.0.0.1", "--port", "0", "--store",
                        "s3://hidden-bucket/hidden-prefix/?endpoint=http://127.0.0.1:\(port)&region=eu-west-1",
                    ],
                    environment: [
                        "AWS_ACCESS_KEY_ID": "AKIAHIDDENKEYID00001", "AWS_SECRET_ACCESS_KEY": "hidden-secret-value",
                        "AWS_SESSION_TOKEN": "",
                    ])
                defer { serve.stop() }
                let service = RemoteService(port: try await serve.waitUntilListening(), client: client)
                let secrets = ["AKIAHIDDENKEYID00001", "hidden-bucket", "hidden-prefix", "127.0.0.1"]
                try await Self.expectNoSecrets(service, secrets: secrets, log: serve.output)
                #expect(serve.output.contents.contains("AKIAHIDDENKEYID00001"), "the log keeps the detail")
                #expect(!serve.output.contents.contains("hidden-secret-value"))
                serve.send(SIGTERM)
                #expect(try await serve.waitForExit() == 0)
            }
        }
    }

    /// A v2 read, a v1 election and `/readyz` fail on the store; their answers name none of `secrets`, and the
    /// request id of each failed request is in the log.
    static func expectNoSecrets(
        _ service: RemoteService,
        secrets: [String],
        log: OutputBuffer,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let failures = [
            try await service.get("/v2/leases/k"),
            try await service.get("/api/v1/elect/s/r?candidate=c"),
            try await service.post("/v2/leases/k", json(["holder": "h", "ttl_ms": 1000])),
        ]
        for answer in failures {
            #expect(answer.status == 500, "\(answer)", sourceLocation: sourceLocation)
            let body = try answer.object(sourceLocation: sourceLocation)
            #expect(
                ["store_unavailable", "timeout"].contains(body["code"] as? String ?? ""), "\(answer)",
                sourceLocation: sourceLocation)
            #expect(body["retry"] as? Bool == true, sourceLocation: sourceLocation)
            for secret in secrets {
                #expect(!answer.body.contains(secret), "\(secret) in \(answer)", sourceLocation: sourceLocation)
            }
            let id = try #require(body["request_id"] as? String, sourceLocation: sourceLocation)
            #expect(id.count == 16, sourceLocation: sourceLocation)
            try await waitUntil(log.contents.contains(id), "the request id \(id) is logged")
        }
        let ready = try await service.get("/readyz")
        #expect(ready.status == 503, "\(ready)", sourceLocation: sourceLocation)
        let body = try ready.object(sourceLocation: sourceLocation)
        #expect(body["code"] as? String == "not_ready", sourceLocation: sourceLocation)
        #expect(
            ["store_unavailable", "timeout"].contains(body["reason"] as? String ?? ""), "\(ready)",
            sourceLocation: sourceLocation)
        for secret in secrets {
            #expect(!ready.body.contains(secret), "\(secret) in \(ready)", sourceLocation: sourceLocation)
        }
    }

    /// Waits (at most 10 s) for `condition`, which a child process's output makes true.
    static func waitUntil(_ condition: @autoclosure () -> Bool, _ what: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out: \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs `body` with the port of an HTTP server on 127.0.0.1 that answers every request as S3 does a key it
    /// does not know: `403 InvalidAccessKeyId`.
    func withRefusingS3<Value>(_ body: (Int) async throws -> Value) async throws -> Value {
        let router = Router()
        for method in [HTTPRequest.Method.get, .put, .head, .delete, .post] {
            router.on("**", method: method) { _, _ in
                Response(
                    status: .forbidden, headers: [.contentType: "application/xml"],
                    body: .init(
                        byteBuffer: ByteBuffer(string: "<Error><Code>InvalidAccessKeyId</Code></Error>")))
            }
        }
        var logger = Logger(label: "baton.test.s3")
        logger.logLevel = .critical
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let outcome: Result<Value, any Error>
            if let port = await ports.first(where: { _ in true }), port > 0 {
                do {
                    outcome = .success(try await body(port))
                } catch {
                    outcome = .failure(error)
                }
            } else {
                outcome = .failure(TestFailure("the fake S3 endpoint did not start"))
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try outcome.get()
        }
    }
}
