import NIOCore
import NIOSSL

/// Answers the HTTP/2 PING frames etcd sends, below the HTTP/2 handler, so they never reach it.
///
/// etcd's gRPC server (grpc-go) measures the connection's bandwidth-delay product with a PING after each burst
/// of data it receives. A client that keeps a lease alive, renews or reads every few milliseconds gets a PING
/// for nearly every request. swift-nio-http2 counts PINGs as control frames and tears the connection down with
/// ENHANCE_YOUR_CALM after 200 in 30 seconds, and the gRPC transport offers no setting for that limit, so a busy
/// store lost its connection (and every stream on it) every few hundred requests. This handler reads the frames
/// the server sends, answers each PING (without the ACK flag) with its ACK carrying the same 8 bytes, as
/// RFC 9113 §6.7 asks, and passes every other frame on unchanged.
///
/// It sits between the socket (or TLS) and the HTTP/2 handler, so it sees the server's frames as bytes: the
/// server's side of a connection starts with a frame (its SETTINGS), never with the client's preface. Our ACKs are
/// written from `channelRead`, on the event loop, between the HTTP/2 handler's writes, which are whole frames.
final class EtcdPingAnswerer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let frameHeaderLength = 9
    static let pingType: UInt8 = 6
    static let ackFlag: UInt8 = 1

    /// The start of a frame that has not fully arrived yet.
    private var partial: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var partial {
            partial.writeBuffer(&bytes)
            bytes = partial
            self.partial = nil
        }
        // Runs of frames between PINGs pass on as slices of the read (no copy); each PING is answered.
        var offset = bytes.readerIndex
        var runStart = offset
        var answered = false
        while let (type, flags, length) = Self.frameHeader(bytes, at: offset),
            bytes.writerIndex - offset >= Self.frameHeaderLength + length
        {
            let frameLength = Self.frameHeaderLength + length
            if type == Self.pingType, flags & Self.ackFlag == 0, length == 8 {
                if offset > runStart {
                    context.fireChannelRead(wrapInboundOut(bytes.getSlice(at: runStart, length: offset - runStart)!))
                }
                let ping = bytes.getSlice(at: offset, length: frameLength)!
                context.write(NIOAny(Self.ack(of: ping, allocator: context.channel.allocator)), promise: nil)
                answered = true
                runStart = offset + frameLength
            }
            offset += frameLength
        }
        if offset > runStart {
            context.fireChannelRead(wrapInboundOut(bytes.getSlice(at: runStart, length: offset - runStart)!))
        }
        if bytes.writerIndex > offset {
            // A frame cut across reads waits for its rest (copied: the read's storage may be reused).
            var rest = context.channel.allocator.buffer(capacity: bytes.writerIndex - offset)
            var tail = bytes.getSlice(at: offset, length: bytes.writerIndex - offset)!
            rest.writeBuffer(&tail)
            partial = rest
        }
        if answered { context.flush() }
    }

    /// Type, flags and payload length of the frame at `offset`, if its header has arrived.
    static func frameHeader(_ bytes: ByteBuffer, at offset: Int) -> (type: UInt8, flags: UInt8, length: Int)? {
        guard bytes.writerIndex - offset >= frameHeaderLength,
            let high = bytes.getInteger(at: offset, as: UInt8.self),
            let low = bytes.getInteger(at: offset + 1, as: UInt16.self),
            let type = bytes.getInteger(at: offset + 3, as: UInt8.self),
            let flags = bytes.getInteger(at: offset + 4, as: UInt8.self)
        else { return nil }
        return (type, flags, Int(high) << 16 | Int(low))
    }

    /// The ACK of a PING frame: the same frame with the ACK flag set.
    static func ack(of ping: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var ack = allocator.buffer(capacity: ping.readableBytes)
        var ping = ping
        ack.writeBuffer(&ping)
        ack.setInteger(ackFlag, at: ack.readerIndex + 4)
        return ack
    }

    /// Adds the handler to a new connection's pipeline: right after TLS when there is TLS, else first.
    static func install(on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            if let tls = try? pipeline.context(handlerType: NIOSSLClientHandler.self) {
                try pipeline.addHandler(EtcdPingAnswerer(), position: .after(tls.handler))
            } else {
                try pipeline.addHandler(EtcdPingAnswerer(), position: .first)
            }
        }
    }
}
