import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Prometheus
import Synchronization

/// The count of open connections, shared by every connection's ``ConnectionLimitHandler``.
final class ConnectionSlots: Sendable {
    /// The most connections served at once (at least 1).
    let capacity: Int
    private let open = Atomic(0)
    private let metrics: LimitMetrics

    init(capacity: Int, metrics: LimitMetrics) {
        self.capacity = max(1, capacity)
        self.metrics = metrics
    }

    /// Takes a slot; false (and counted as a refusal) when every slot is taken.
    func take() -> Bool {
        let count = open.wrappingAdd(1, ordering: .relaxed).newValue
        guard count <= capacity else {
            open.wrappingSubtract(1, ordering: .relaxed)
            metrics.rejected(.connections)
            return false
        }
        metrics.openConnections.increment()
        return true
    }

    /// Gives a slot back.
    func give() {
        open.wrappingSubtract(1, ordering: .relaxed)
        metrics.openConnections.decrement()
    }
}

/// Serves a connection only if a slot of ``ConnectionSlots`` is free when it opens. Otherwise the connection's
/// first request is read and answered `503` with `Retry-After`, `Connection: close` and a JSON error naming the
/// limit `connections`, and the connection closed: clients get an answer they can act on instead of a connection
/// that hangs in the listen backlog. (Such a request reaches no route and is not counted in
/// `baton_http_requests_total`, only in `baton_http_rejected_total{limit="connections"}`.)
final class ConnectionLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case waiting
        case admitted
        case refused
        case closed
    }

    private let slots: ConnectionSlots
    private var state = State.waiting

    init(slots: ConnectionSlots) {
        self.slots = slots
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Every connection keeps one receive buffer while it lives, and most of the connections of a busy service
        // are idle streams that read one small request: start it at 512 bytes rather than NIO's 2 KiB (it grows
        // for larger reads).
        try? context.channel.syncOptions?.setOption(
            ChannelOptions.recvAllocator,
            value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536)
        )
        if context.channel.isActive { admit() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        giveBack()
    }

    func channelActive(context: ChannelHandlerContext) {
        admit()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        giveBack()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state == .refused else {
            context.fireChannelRead(data)
            return
        }
        // Read the whole request before answering, so that closing leaves no unread bytes (which would reset the
        // connection and could lose the answer).
        guard case .end = unwrapInboundIn(data) else { return }
        state = .closed
        refuse(context)
    }

    private func admit() {
        guard state == .waiting else { return }
        state = slots.take() ? .admitted : .refused
    }

    private func giveBack() {
        if state == .admitted { slots.give() }
        state = .closed
    }

    private func refuse(_ context: ChannelHandlerContext) {
        let error = APIError.overLimit(
            .connections, retryAfter: BatonHTTPServer.Configuration.Limits.retryAfterGlobal,
            message: "the service has too many connections: at most \(slots.capacity) at once; retry later")
        let body = ByteBuffer(string: error.body.text + "\n")
        var fields = error.headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.readableBytes)
        fields[.connection] = "close"
        let head = HTTPResponse(status: error.status, headerFields: fields)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
