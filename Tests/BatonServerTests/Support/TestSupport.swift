import AsyncHTTPClient
import Baton
import BatonServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Testing

/// A service over `store` (a fresh memory store by default) on 127.0.0.1 and a port the kernel picks.
func makeServer(
    store: LeaseStore = .memory(),
    _ configure: (inout BatonHTTPServer.Configuration) -> Void = { _ in }
) -> BatonHTTPServer {
    var configuration = BatonHTTPServer.Configuration(host: "127.0.0.1", port: 0)
    configure(&configuration)
    var logger = Logger(label: "baton.test")
    logger.logLevel = .critical
    return BatonHTTPServer(store: store, configuration: configuration, logger: logger)
}

/// An answer as the tests read it.
struct Answer: Sendable, CustomStringConvertible {
    var status: Int
    /// Header values by lower-cased name.
    var headers: [String: String]
    var body: String

    /// The body as a JSON object.
    func object(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed])
        return try #require(value as? [String: Any], "not a JSON object: \(body)", sourceLocation: sourceLocation)
    }

    /// The `error` message of a JSON error body ("" if there is none).
    var errorMessage: String {
        ((try? object())?["error"] as? String) ?? ""
    }

    var description: String { "\(status) \(body)" }
}

/// Something that sends requests to the service: the in-process router or a live connection.
protocol Caller: Sendable {
    func call(_ method: String, _ path: String, body: String?, headers: [(String, String)]) async throws -> Answer
}

extension Caller {
    func get(_ path: String, headers: [(String, String)] = []) async throws -> Answer {
        try await call("GET", path, body: nil, headers: headers)
    }

    func post(_ path: String, _ body: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        try await call("POST", path, body: body, headers: headers)
    }

    func put(_ path: String, _ body: String?, headers: [(String, String)] = []) async throws -> Answer {
        try await call("PUT", path, body: body, headers: headers)
    }

    func delete(_ path: String, _ body: String?, headers: [(String, String)] = []) async throws -> Answer {
        try await call("DELETE", path, body: body, headers: headers)
    }
}

/// HummingbirdTesting's client: `.router` sends requests straight to the router, `.live` over one connection.
struct TestingCaller: Caller {
    let client: any TestClientProtocol

    func call(_ method: String, _ path: String, body: String?, headers: [(String, String)]) async throws -> Answer {
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: try #require(.init(name)), value: value)) }
        let response = try await client.executeRequest(
            uri: path,
            method: try #require(HTTPRequest.Method(method)),
            headers: fields,
            body: body.map { ByteBuffer(string: $0) }
        )
        var answerHeaders: [String: String] = [:]
        for field in response.headers { answerHeaders[field.name.canonicalName] = field.value }
        return Answer(
            status: Int(response.status.code), headers: answerHeaders, body: String(buffer: response.body))
    }
}

/// How a test reaches the service.
enum Transport: String, CaseIterable, Sendable {
    case router
    case live

    var setup: TestingSetup {
        switch self {
        case .router: .router
        case .live: .live
        }
    }
}

extension BatonHTTPServer {
    /// Runs `test` against the service through HummingbirdTesting.
    func test<Value: Sendable>(
        _ transport: Transport,
        _ test: @escaping @Sendable (TestingCaller) async throws -> Value
    ) async throws -> Value {
        try await makeApplication().test(transport.setup) { client in try await test(TestingCaller(client: client)) }
    }
}

/// A service listening on 127.0.0.1:`port`, reached with AsyncHTTPClient over as many connections as needed.
struct RemoteService: Caller {
    let port: Int
    let client: HTTPClient

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func request(
        _ method: String,
        _ path: String,
        body: String? = nil,
        headers: [(String, String)] = []
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url(path))
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        return request
    }

    func call(_ method: String, _ path: String, body: String?, headers: [(String, String)]) async throws -> Answer {
        let response = try await client.execute(
            request(method, path, body: body, headers: headers), timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        var answerHeaders: [String: String] = [:]
        for (name, value) in response.headers { answerHeaders[name.lowercased()] = value }
        return Answer(status: Int(response.status.code), headers: answerHeaders, body: String(buffer: bytes))
    }

    /// Opens a streaming request (an event stream); the caller reads the body.
    func open(_ path: String, headers: [(String, String)] = []) async throws -> HTTPClientResponse {
        try await client.execute(request("GET", path, headers: headers), timeout: .seconds(30))
    }

    /// An HTTP client for tests: up to 64 connections, bounded connect and read times. Shut it down after use.
    static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }
}

/// A service running in this process on a live port, and its service group.
struct LiveServer: Caller {
    let remote: RemoteService
    let group: ServiceGroup

    var port: Int { remote.port }

    func call(_ method: String, _ path: String, body: String?, headers: [(String, String)]) async throws -> Answer {
        try await remote.call(method, path, body: body, headers: headers)
    }

    func open(_ path: String, headers: [(String, String)] = []) async throws -> HTTPClientResponse {
        try await remote.open(path, headers: headers)
    }
}

/// Runs the service on a live port in a `ServiceGroup`, calls `body`, then shuts the service down gracefully
/// (unless `body` did already) and waits for it to stop.
func withLiveServer<Value>(
    _ server: BatonHTTPServer,
    _ body: (LiveServer) async throws -> Value
) async throws -> Value {
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let application = server.makeApplication { channel in
        portContinuation.yield(channel.localAddress?.port ?? 0)
        portContinuation.finish()
    }
    var logger = Logger(label: "baton.test.group")
    logger.logLevel = .critical
    let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
    let client = RemoteService.makeClient()
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let outcome: Result<Value, any Error>
        if let port = await ports.first(where: { _ in true }), port > 0 {
            do {
                let server = LiveServer(remote: RemoteService(port: port, client: client), group: group)
                outcome = .success(try await body(server))
            } catch {
                outcome = .failure(error)
            }
        } else {
            outcome = .failure(TestFailure("the service did not start"))
        }
        try? await client.shutdown()
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try outcome.get()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One message of an event stream: its `event` and `data` fields, or a comment.
struct EventMessage: Sendable, Equatable {
    var event: String?
    var data: String?
    var comment: String?
}

/// Reads the messages of a Server-Sent Events body one at a time.
struct EventStreamReader {
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    private var pending = ""

    init(_ response: HTTPClientResponse) {
        iterator = response.body.makeAsyncIterator()
    }

    /// The next message, or nil when the stream ended. Each read is bounded by the client's read timeout.
    mutating func next() async throws -> EventMessage? {
        while true {
            if let end = pending.range(of: "\n\n") {
                let block = pending[..<end.lowerBound]
                pending = String(pending[end.upperBound...])
                var message = EventMessage()
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") {
                        message.comment = line.dropFirst().trimmingCharacters(in: .whitespaces)
                    } else if let colon = line.firstIndex(of: ":") {
                        let value = line[line.index(after: colon)...].drop { $0 == " " }
                        switch line[..<colon] {
                        case "event": message.event = String(value)
                        case "data": message.data = String(value)
                        default: break
                        }
                    }
                }
                if message.event == nil && message.data == nil && message.comment == nil { continue }
                return message
            }
            guard let buffer = try await iterator.next() else { return nil }
            pending += String(buffer: buffer)
        }
    }

    /// The next `leader` event's data as an object, skipping comments.
    mutating func nextLeader(sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any]? {
        while let message = try await next() {
            guard message.event == "leader", let data = message.data else { continue }
            let value = try JSONSerialization.jsonObject(with: Data(data.utf8))
            guard let object = value as? [String: Any] else {
                throw TestFailure("a leader event whose data is not an object: \(data)")
            }
            return object
        }
        return nil
    }
}

/// The JSON body of a request.
func json(_ fields: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// The token of a lease answer.
func token(_ answer: Answer, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int64 {
    let value = try answer.object(sourceLocation: sourceLocation)["token"]
    return try #require((value as? NSNumber)?.int64Value, "no token in \(answer)", sourceLocation: sourceLocation)
}

/// Runs `body` with a test HTTP client and shuts the client down afterwards.
func withHTTPClient<Value>(_ body: (HTTPClient) async throws -> Value) async throws -> Value {
    let client = RemoteService.makeClient()
    do {
        let value = try await body(client)
        try await client.shutdown()
        return value
    } catch {
        try? await client.shutdown()
        throw error
    }
}
