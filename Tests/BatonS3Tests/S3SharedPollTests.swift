@_spi(BatonStoreKit) import Baton
@_spi(BatonStoreKit) import BatonS3
import BatonTestKit
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

/// The subscribers of one key in one S3 store share one poll: counted on a stand-in S3 endpoint that answers
/// every read "no such key" and counts the reads of each object.
@Suite("S3 store: one poll per key")
struct S3SharedPollTests {
    /// Answers every request `404 NoSuchKey` and counts the requests per path.
    private final class CountingEndpoint: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let counts = Mutex<[String: Int]>([:])

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                let path = String(head.uri.prefix { $0 != "?" })
                counts.withLock { $0["\(head.method) \(path)", default: 0] += 1 }
            case .body:
                break
            case .end:
                let body = ByteBuffer(string: "<Error><Code>NoSuchKey</Code></Error>")
                var headers = HTTPHeaders([("content-type", "application/xml")])
                headers.add(name: "content-length", value: String(body.readableBytes))
                let head = HTTPResponseHead(version: .http1_1, status: .notFound, headers: headers)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }

        func count(_ request: String) -> Int { counts.withLock { $0[request, default: 0] } }
    }

    @Test("twenty subscribers of a key read its lease object once, and once per poll")
    func oneReadPerPoll() async throws {
        let endpoint = CountingEndpoint()
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(endpoint)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        let clock = ManualClock()
        var configuration = S3LeaseStore.Configuration(
            idlePollInterval: .seconds(1),
            credentials: S3Credentials(accessKeyID: "AKIDTEST", secretAccessKey: "test-secret"))
        configuration.clock = BatonClock(clock)
        let driver = try S3LeaseStore(
            "s3://bucket/p/?endpoint=http://127.0.0.1:\(port)&region=us-east-1", configuration: configuration,
            environment: [:])
        let read = "GET /bucket/p/lease.shared"

        try await withRunning([driver]) { stores in
            let store = stores[0]
            try await withThrowingTaskGroup(of: Void.self) { group in
                let (started, ready) = AsyncStream.makeStream(of: Void.self)
                for _ in 0..<20 {
                    group.addTask {
                        var changes = try store.changes(key: "shared").makeAsyncIterator()
                        // Every subscriber sees that nobody leads, then waits for a change that never comes.
                        let first = try await changes.next()
                        #expect(first == .some(nil))
                        ready.yield()
                        _ = try await changes.next()
                    }
                }
                var subscribed = 0
                for await _ in started {
                    subscribed += 1
                    if subscribed == 20 { break }
                }
                // One read served all twenty first observations.
                #expect(endpoint.count(read) == 1)

                // Each poll is one read, whatever the number of subscribers.
                for poll in 1...3 {
                    let sleeping = try await eventually { clock.sleeperCount > 0 }
                    #expect(sleeping, "the poll sleeps")
                    clock.advance(by: .seconds(1))
                    let polled = try await eventually { endpoint.count(read) >= 1 + poll }
                    #expect(polled, "poll \(poll) reads")
                    #expect(endpoint.count(read) == 1 + poll)
                }
                group.cancelAll()
            }
        }
        try await listener.close()
    }
}
