import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client stops reading: when a response part written `timeout` ago is still not
/// handed to the kernel (the client's receive window and this socket's send buffer are full), the connection is
/// closed and `onTimeout` called.
///
/// Hummingbird's response writer waits while the channel is not writable, so a client that stops reading would
/// otherwise hold its task, its socket and its store subscription forever. Closing the channel fails the waiting
/// write, which ends the handler's task (an event stream ends, its slot is freed). Only writes that stay unsent
/// count: a stream with nothing to say is no slow reader. The socket's send buffer is fixed at
/// ``sendBufferBytes``, so that what a stalled client holds in the kernel stays small and the timeout starts soon
/// after the client stops reading.
final class WriteTimeoutHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private let onTimeout: @Sendable () -> Void
    /// When each write not yet completed was made, oldest first (writes complete in order).
    private var unsent = CircularBuffer<NIODeadline>()
    private var timer: Scheduled<Void>?
    private var timedOut = false

    init(timeout: TimeAmount, onTimeout: @escaping @Sendable () -> Void) {
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    /// The send buffer of each connection's socket: a fixed 64 KiB (the kernel doubles it) instead of Linux's
    /// autotuning, which lets a stalled connection take megabytes of kernel memory and keeps taking bytes for
    /// seconds before a write stays unsent.
    static let sendBufferBytes = 64 * 1024

    /// The send buffer of an event stream's socket (the kernel doubles it): an event is a few hundred bytes and
    /// nothing else follows on the connection, so a client that stops reading fills it within a few events, and
    /// the write timeout starts at once rather than after the 128 KiB of ``sendBufferBytes`` filled up.
    static let streamSendBufferBytes = 8 * 1024

    func handlerAdded(context: ChannelHandlerContext) {
        setSendBuffer(context, bytes: Self.sendBufferBytes)
    }

    private func setSendBuffer(_ context: ChannelHandlerContext, bytes: Int) {
        let option = ChannelOptions.socketOption(.so_sndbuf)
        try? context.channel.syncOptions?.setOption(option, value: SocketOptionValue(bytes))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        unsent.removeAll()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head(let head) = unwrapOutboundIn(data), head.headerFields[.contentType] == "text/event-stream" {
            setSendBuffer(context, bytes: Self.streamSendBufferBytes)
        }
        let promise = promise ?? context.eventLoop.makePromise()
        unsent.append(.now())
        if timer == nil { arm(context, at: unsent.first! + timeout) }
        promise.futureResult.assumeIsolated().whenComplete { [self] _ in
            if !unsent.isEmpty { unsent.removeFirst() }
            if unsent.isEmpty {
                timer?.cancel()
                timer = nil
            }
        }
        context.write(data, promise: promise)
    }

    /// Checks at `deadline` whether the oldest unsent write is older than the timeout; re-arms if it is not.
    private func arm(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            guard let oldest = unsent.first, !timedOut else { return }
            if oldest + timeout <= .now() {
                timedOut = true
                onTimeout()
                channel.close(promise: nil)
            } else {
                arm(context, at: oldest + timeout)
            }
        }
    }
}
