import AsyncHTTPClient
import Baton
import BatonServer
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

/// HTTPS served by the service itself, with a test certificate made at test time.
@Suite("HTTP service: HTTPS")
struct TLSTests {
    /// A private CA and a server certificate it signed for 127.0.0.1 and localhost (`ca.crt`, `server.crt`,
    /// `server.key`), and a key of another pair (`other.key`), made by `openssl` in `directory`.
    static func makeCertificates(in directory: URL) throws {
        let script = """
            set -e
            cd "$1"
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
              -days 2 -subj "/CN=Baton Test CA"
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
              -subj "/CN=localhost"
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
              -extfile ext.cnf
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out other.key
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "sh", directory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("openssl could not make the test certificates") }
    }

    /// An HTTP client that trusts only the CA in `caFile` (or the system's roots without one).
    static func makeClient(trusting caFile: String?) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    static func get(_ client: HTTPClient, _ url: String, token: String? = nil) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: url)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    @Test("a server with a test certificate answers over HTTPS, and not over plain HTTP")
    func https() async throws {
        try await withTemporaryDirectory { directory in
            try Self.makeCertificates(in: directory)
            let tls = try BatonHTTPServer.tlsConfiguration(
                certificateFile: directory.appendingPathComponent("server.crt").path,
                privateKeyFile: directory.appendingPathComponent("server.key").path)
            let server = makeServer {
                $0.tls = tls
                $0.authToken = "tls-token"
            }
            try await withLiveServer(server) { live in
                let trusting = try Self.makeClient(trusting: directory.appendingPathComponent("ca.crt").path)
                let untrusting = try Self.makeClient(trusting: nil)
                let plain = RemoteService.makeClient()
                var failure: (any Error)?
                do {
                    try await Self.check(live.port, trusting, untrusting, plain)
                } catch {
                    failure = error
                }
                for client in [trusting, untrusting, plain] { try? await client.shutdown() }
                if let failure { throw failure }
            }
        }
    }

    private static func check(_ port: Int, _ trusting: HTTPClient, _ untrusting: HTTPClient, _ plain: HTTPClient)
        async throws
    {
        let base = "https://127.0.0.1:\(port)"
        let alive = try await get(trusting, base + "/alive")
        #expect(alive.0 == 200)
        #expect(alive.1 == "ok\n")
        #expect(try await get(trusting, base + "/v2/leases/k").0 == 401)
        #expect(try await get(trusting, base + "/v2/leases/k", token: "tls-token").0 == 404)

        // A client that does not trust the test CA refuses the server's certificate.
        await #expect(throws: (any Error).self) { try await get(untrusting, base + "/alive") }
        // Plain HTTP on the TLS port gets no answer.
        await #expect(throws: (any Error).self) { try await get(plain, "http://127.0.0.1:\(port)/alive") }
    }

    @Test("unreadable, malformed and mismatched files are refused, naming the file")
    func badFiles() async throws {
        try await withTemporaryDirectory { directory in
            try Self.makeCertificates(in: directory)
            func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
            func failure(_ certificate: String, _ key: String) -> String {
                let error = #expect(throws: BatonError.self) {
                    try BatonHTTPServer.tlsConfiguration(certificateFile: path(certificate), privateKeyFile: path(key))
                }
                #expect(error?.code == .invalidArgument)
                return error?.message ?? ""
            }
            #expect(
                failure("missing.crt", "server.key")
                    == "cannot read the certificate file \(path("missing.crt")): no such file")
            #expect(
                failure("server.crt", "missing.key")
                    == "cannot read the private key file \(path("missing.key")): no such file")
            #expect(
                failure("server.key", "server.key").hasPrefix(
                    "the certificate file \(path("server.key")) holds no PEM certificate"))
            #expect(
                failure("server.crt", "server.crt").hasPrefix("the private key file \(path("server.crt")) holds no"))
            #expect(
                failure("server.crt", "other.key")
                    == "the private key in \(path("other.key")) does not belong to the certificate in \(path("server.crt"))"
            )
            _ = try BatonHTTPServer.tlsConfiguration(
                certificateFile: path("server.crt"), privateKeyFile: path("server.key"))
        }
    }
}
