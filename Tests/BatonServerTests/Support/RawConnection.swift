import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// One TCP connection to the service that sends raw HTTP/1.1 and keeps what it receives, for tests that hold
/// connections open, read answers the service writes before closing, or stop reading altogether.
final class RawConnection: Sendable {
    /// Collects the bytes the connection receives and wakes those waiting for more.
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        struct State {
            var bytes: [UInt8] = []
            var closed = false
            /// Counts the changes, so a waiter can tell whether one happened since it looked.
            var version = 0
            var waiters: [CheckedContinuation<Void, Never>] = []
        }

        let state = Mutex(State())

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            wake { $0.bytes.append(contentsOf: buffer.readableBytesView) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            wake { $0.closed = true }
            context.fireChannelInactive()
        }

        func wake(_ change: (inout State) -> Void) {
            let waiters = state.withLock { state in
                change(&state)
                state.version += 1
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        /// Waits for a change (bytes or close) after `version`, or for cancellation.
        func changed(after version: Int) async {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if state.version != version || Task.isCancelled { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                wake { _ in }
            }
        }
    }

    let channel: any Channel
    private let collector: Collector

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// Connects to 127.0.0.1:`port`. With `reading: false` the connection reads nothing from its socket until
    /// ``startReading()``, and `receiveBuffer` (set before connecting) bounds how much the kernel takes for it.
    static func open(port: Int, reading: Bool = true, receiveBuffer: Int? = nil) async throws -> RawConnection {
        let collector = Collector()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: reading)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, collector: collector)
    }

    /// Sends `text` as it is.
    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Sends a request with no body (`Host: localhost`).
    func sendRequest(_ method: String, _ path: String, body: String? = nil) async throws {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        if let body {
            text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        } else {
            text += "\r\n"
        }
        try await send(text)
    }

    /// Everything received so far, as text.
    var received: String {
        collector.state.withLock { String(decoding: $0.bytes, as: UTF8.self) }
    }

    /// Whether the service closed the connection (seen only while reading).
    var isClosed: Bool { collector.state.withLock { $0.closed } }

    /// Waits until `condition` holds for what was received (and whether the connection is closed), for at most
    /// `limit`; returns what was received then.
    /// - Throws: ``TestFailure`` naming `what` when the time is up.
    @discardableResult
    func wait(
        for what: String,
        within limit: Duration = .seconds(10),
        _ condition: @escaping @Sendable (_ text: String, _ closed: Bool) -> Bool
    ) async throws -> String {
        let deadline = ContinuousClock.now + limit
        return try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { [self] in
                while true {
                    let (text, closed, version) = collector.state.withLock {
                        (String(decoding: $0.bytes, as: UTF8.self), $0.closed, $0.version)
                    }
                    if condition(text, closed) { return text }
                    if Task.isCancelled { return nil }
                    await collector.changed(after: version)
                }
            }
            group.addTask {
                try await Task.sleep(until: deadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let text = first else {
                throw TestFailure("\(what) did not happen within \(limit); received: \(received.prefix(500))")
            }
            return text
        }
    }

    /// The status code of the first answer, once its status line arrived.
    func status(within limit: Duration = .seconds(10)) async throws -> Int {
        let text = try await wait(for: "a status line", within: limit) { text, _ in text.contains("\r\n") }
        let parts = text.prefix { $0 != "\r" }.split(separator: " ")
        guard parts.count >= 2, let code = Int(parts[1]) else { throw TestFailure("no status line in \(text)") }
        return code
    }

    /// Reads from the socket from now on (for a connection opened with `reading: false`).
    func startReading() {
        channel.setOption(ChannelOptions.autoRead, value: true).whenSuccess { [channel] in channel.read() }
    }

    /// Closes the connection.
    func close() async {
        try? await channel.close()
    }
}
