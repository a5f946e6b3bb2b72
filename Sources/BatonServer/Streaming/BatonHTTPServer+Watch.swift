import Baton
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle

extension BatonHTTPServer {
    /// What an event stream writes.
    private enum WatchEvent: Sendable {
        case observed(LeaderInfo?)
        case feedEnded((any Error)?)
        case keepAlive
        case shutdown
    }

    /// `GET /v2/leases/{key}/watch`: Server-Sent Events, one `leader` event per observation of the store's change
    /// feed (the current leader first, then each change; `"leader": null` when nobody leads), and a comment line
    /// every ``Configuration-swift.struct/keepAliveInterval``.
    ///
    /// The stream ends after an `error` event if the store's feed fails (reconnect to go on), and cleanly at
    /// graceful shutdown.
    @Sendable func watch(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let feed = try store.changes(key: key)
        let keepAlive = configuration.keepAliveInterval
        let logger = self.logger
        let body = ResponseBody { writer in
            let (events, continuation) = AsyncStream.makeStream(of: WatchEvent.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                defer {
                    continuation.finish()
                    group.cancelAll()
                }
                group.addTask {
                    await forward(feed) {
                        continuation.yield(.observed($0))
                    } ended: {
                        continuation.yield(.feedEnded($0))
                    }
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: keepAlive)
                        continuation.yield(.keepAlive)
                    }
                }
                try await withGracefulShutdownHandler {
                    try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
                    for await event in events {
                        switch event {
                        case .observed(let leader):
                            let data = JSONOutput.object([("key", .string(key)), ("leader", Self.json(leader))])
                            try await writer.write(ByteBuffer(string: "event: leader\ndata: \(data.text)\n\n"))
                        case .keepAlive:
                            try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        case .feedEnded(let error):
                            let answer = error.map { APIError.from($0) }
                            let message = answer?.message ?? "the store closed the feed"
                            let reason = answer.map { $0.logDetail ?? $0.message } ?? message
                            logger.debug("watch feed ended", metadata: ["key": "\(key)", "reason": "\(reason)"])
                            let data = JSONOutput.object([("error", .string(message))])
                            try await writer.write(ByteBuffer(string: "event: error\ndata: \(data.text)\n\n"))
                            return
                        case .shutdown:
                            return
                        }
                    }
                } onGracefulShutdown: {
                    continuation.yield(.shutdown)
                }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/event-stream",
                .cacheControl: "no-cache",
                HTTPField.Name("X-Accel-Buffering")!: "no",
            ],
            body: body
        )
    }
}
