import Baton
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

extension BatonHTTPServer {
    /// How an event stream ends.
    private enum WatchEnding: Sendable {
        /// The store's change feed ended, with the error if it failed.
        case feedEnded((any Error)?)
        /// The service is shutting down.
        case shutdown
        /// The client's connection closed.
        case clientGone
    }

    /// `GET /v2/leases/{key}/watch`: Server-Sent Events, one `leader` event per observation of the store's change
    /// feed (the current leader first, then each change; `"leader": null` when nobody leads), and a comment line
    /// every ``Configuration-swift.struct/keepAliveInterval``.
    ///
    /// The stream ends after an `error` event if the store's feed fails (reconnect to go on), and cleanly at
    /// graceful shutdown. It takes a slot of ``Configuration-swift.struct/Limits/maxStreams`` and
    /// ``Configuration-swift.struct/Limits/maxStreamsPerKey`` while open (`503` or `429` when none is free). For a
    /// client that reads slower than leaders change, at most
    /// ``Configuration-swift.struct/Limits/streamBufferSize`` changes wait, the oldest dropped first, so the
    /// newest leader always arrives; a client that stops reading is disconnected after the write timeout.
    @Sendable func watch(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let key = try name("key", context)
        let permit = try limiters.streams.admit(key: key)
        let capacity = configuration.limits.streamBufferSize
        let outbox = StreamOutbox<LeaderInfo?, WatchEnding>(capacity: capacity)
        // The store pushes its observations into the outbox: no task per stream waits on the feed, only the one
        // that writes. Started before answering, so a store that cannot follow the key is answered with its error.
        let observation: ChangeObservation
        do {
            observation = try store.observe(key: key) { observed in
                switch observed {
                case .leader(let leader): outbox.post(leader)
                case .ended(let error): outbox.finish(.feedEnded(error))
                }
            }
        } catch {
            permit.release()
            throw error
        }
        // If the body never runs (the connection is gone first), dropping it drops the observation, which stops it.
        let keepAlive = configuration.keepAliveInterval
        let logger = self.logger
        let connectionClosed = context.connectionClosed
        let eventLoop = context.eventLoop
        let body = ResponseBody { writer in
            defer {
                observation.cancel()
                permit.release()
            }
            // A client that leaves gives its slot back at once, not at the next keep-alive's failed write.
            connectionClosed.whenComplete { _ in outbox.finish(.clientGone) }
            // A timer of the connection's event loop rather than a task per stream: idle streams are most streams.
            let interval = TimeAmount.nanoseconds(max(keepAlive, .milliseconds(1)).batonNanoseconds)
            let ticker = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                outbox.postKeepAlive()
            }
            defer { ticker.cancel() }
            try await withGracefulShutdownHandler {
                try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
                while let item = await outbox.next() {
                    // What to write is worked out in a plain function: the task of an idle stream then keeps only
                    // this loop's small frame while it waits.
                    let (chunk, last) = Self.eventStreamChunk(item, key: key, logger: logger)
                    if let chunk { try await writer.write(chunk) }
                    if last { return }
                }
            } onGracefulShutdown: {
                outbox.finish(.shutdown)
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

    /// The bytes of `item` on an event stream, and whether the stream ends after them.
    @inline(never)
    private static func eventStreamChunk(
        _ item: StreamOutbox<LeaderInfo?, WatchEnding>.Item,
        key: String,
        logger: Logger
    ) -> (ByteBuffer?, last: Bool) {
        switch item {
        case .event(let leader):
            let data = JSONOutput.object([("key", .string(key)), ("leader", json(leader))])
            return (ByteBuffer(string: "event: leader\ndata: \(data.text)\n\n"), false)
        case .keepAlive:
            return (ByteBuffer(string: ": keep-alive\n\n"), false)
        case .end(.feedEnded(let error)):
            let answer = error.map { APIError.from($0) }
            let message = answer?.message ?? "the store closed the feed"
            let reason = answer.map { $0.logDetail ?? $0.message } ?? message
            logger.debug("watch feed ended", metadata: ["key": "\(key)", "reason": "\(reason)"])
            let data = JSONOutput.object([("error", .string(message))])
            return (ByteBuffer(string: "event: error\ndata: \(data.text)\n\n"), true)
        case .end(.shutdown), .end(.clientGone):
            return (nil, true)
        }
    }
}
