import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `baton serve --access-file` and `--tls-cert`: the real process, configured as an operator would.
@Suite("baton serve: access file and HTTPS", .serialized)
struct ServeAccessTests {
    /// Writes `text` to `name` in `directory` with the permission bits `mode`, and returns its path.
    static func write(_ text: String, _ name: String, in directory: URL, mode: mode_t) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, mode) == 0)
        return path
    }

    /// Whether `process`'s standard error comes to contain `text` within 5 s (it is read as it comes, so the end of
    /// what an exited process wrote may still be on its way).
    static func says(_ process: ServeProcess, _ text: String) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while !process.output.contents.contains(text) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    @Test("over HTTPS, a team-a token is refused team-b keys; the token and file are checked at start")
    func httpsWithScopedTokens() async throws {
        try await withTemporaryDirectory { directory in
            try TLSTests.makeCertificates(in: directory)
            let token = "team-a-\(UUID().uuidString)"
            let access = try Self.write(
                #"{"tokens": [{"name": "team-a", "token": "\#(token)", "write": ["team-a/"]}]}"#, "access.json",
                in: directory, mode: 0o600)
            let serve = try ServeProcess([
                "--host", "127.0.0.1", "--port", "0", "--store", "memory:", "--access-file", access,
                "--tls-cert", directory.appendingPathComponent("server.crt").path,
                "--tls-key", directory.appendingPathComponent("server.key").path,
            ])
            defer { serve.stop() }
            let port = try await serve.waitUntilListening()
            #expect(await Self.says(serve, "listening on https://127.0.0.1:\(port)"))
            #expect(await Self.says(serve, "authentication access file \(access) (1 token)"))

            let client = try TLSTests.makeClient(trusting: directory.appendingPathComponent("ca.crt").path)
            var failure: (any Error)?
            do {
                let base = "https://127.0.0.1:\(port)"
                #expect(try await TLSTests.get(client, base + "/v2/leases/team-a%2Fdb", token: token).0 == 404)
                let refused = try await TLSTests.get(client, base + "/v2/leases/team-b%2Fdb", token: token)
                #expect(refused.0 == 403)
                #expect(refused.1.contains("team-b/db"))
                #expect(!refused.1.contains(token))
                #expect(try await TLSTests.get(client, base + "/v2/leases/team-a%2Fdb").0 == 401)
            } catch {
                failure = error
            }
            try? await client.shutdown()
            if let failure { throw failure }
            serve.send(SIGTERM)
            #expect(try await serve.waitForExit() == 0)
            #expect(!serve.output.contents.contains(token), "the token is never logged")
        }
    }

    @Test("an access file others may read with a clear token, or write, is refused; a hashed one may be read")
    func accessFilePermissions() async throws {
        try await withTemporaryDirectory { directory in
            let clear = #"{"tokens": [{"token": "clear-s3cret", "read": [""]}]}"#
            let readable = try Self.write(clear, "readable.json", in: directory, mode: 0o644)
            let refused = try ServeProcess(["--store", "memory:", "--access-file", readable])
            #expect(try await refused.waitForExit() == 2)
            #expect(
                await Self.says(
                    refused, "--access-file \(readable): the file is readable by group or others (mode 0644)"))
            #expect(!refused.output.contents.contains("clear-s3cret"))

            let hashed = #"{"tokens": [{"sha256": "\#(String(repeating: "ab", count: 32))", "read": [""]}]}"#
            let writable = try Self.write(hashed, "writable.json", in: directory, mode: 0o664)
            let refusedWritable = try ServeProcess(["--store", "memory:", "--access-file", writable])
            #expect(try await refusedWritable.waitForExit() == 2)
            #expect(await Self.says(refusedWritable, "is writable by group or others (mode 0664)"))

            let wrong = try Self.write(
                #"{"tokens": [{"token": "clear-s3cret", "read": "x"}]}"#, "wrong.json", in: directory, mode: 0o600)
            let refusedWrong = try ServeProcess(["--store", "memory:"], environment: ["BATON_ACCESS_FILE": wrong])
            #expect(try await refusedWrong.waitForExit() == 2)
            #expect(await Self.says(refusedWrong, "--access-file \(wrong): tokens[0]: \"read\" must be an array"))
            #expect(!refusedWrong.output.contents.contains("clear-s3cret"))

            let everyoneReads = try Self.write(hashed, "public.json", in: directory, mode: 0o644)
            let accepted = try ServeProcess([
                "--host", "127.0.0.1", "--port", "0", "--store", "memory:", "--access-file", everyoneReads,
            ])
            defer { accepted.stop() }
            try await accepted.waitUntilListening()
            accepted.send(SIGTERM)
            #expect(try await accepted.waitForExit() == 0)
        }
    }

    @Test("SIGHUP reads the access file again; an invalid one leaves the previous tokens")
    func reloadOnHangUp() async throws {
        try await withTemporaryDirectory { directory in
            func file(_ token: String) -> String { #"{"tokens": [{"token": "\#(token)", "read": [""]}]}"# }
            let path = try Self.write(file("first-token"), "access.json", in: directory, mode: 0o600)
            try await withHTTPClient { client in
                let serve = try ServeProcess([
                    "--host", "127.0.0.1", "--port", "0", "--store", "memory:", "--access-file", path,
                ])
                defer { serve.stop() }
                let service = RemoteService(port: try await serve.waitUntilListening(), client: client)
                func status(_ token: String) async throws -> Int {
                    try await service.get("/v2/leases/k", headers: [("Authorization", "Bearer \(token)")]).status
                }
                #expect(try await status("first-token") == 404)
                #expect(try await status("second-token") == 401)

                _ = try Self.write(file("second-token"), "access.json", in: directory, mode: 0o600)
                serve.send(SIGHUP)
                #expect(await Self.says(serve, "reloaded the access file \(path): 1 token"))
                #expect(try await status("second-token") == 404)
                #expect(try await status("first-token") == 401)

                _ = try Self.write("{", "access.json", in: directory, mode: 0o600)
                serve.send(SIGHUP)
                #expect(await Self.says(serve, "the access file was not reloaded; the previous tokens stay"))
                #expect(try await status("second-token") == 404)

                serve.send(SIGTERM)
                #expect(try await serve.waitForExit() == 0)
                #expect(!serve.output.contents.contains("second-token"))
            }
        }
    }

    @Test("TLS options: one without the other, or a key of another certificate, stop the start with exit 2")
    func badTLSOptions() async throws {
        try await withTemporaryDirectory { directory in
            try TLSTests.makeCertificates(in: directory)
            let certificate = directory.appendingPathComponent("server.crt").path
            let alone = try ServeProcess(["--store", "memory:", "--tls-cert", certificate])
            #expect(try await alone.waitForExit() == 2)
            #expect(await Self.says(alone, "--tls-cert needs --tls-key"))

            let other = directory.appendingPathComponent("other.key").path
            let mismatched = try ServeProcess(
                ["--store", "memory:"],
                environment: [
                    "BATON_TLS_CERT": certificate, "BATON_TLS_KEY": other,
                ])
            #expect(try await mismatched.waitForExit() == 2)
            #expect(
                await Self.says(
                    mismatched, "the private key in \(other) does not belong to the certificate in \(certificate)"))
        }
    }
}
