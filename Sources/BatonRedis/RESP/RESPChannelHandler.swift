import Baton
import NIOCore
import Synchronization

/// A command on its way to the server, with the promise its reply completes.
struct RESPRequest: Sendable {
    /// The command.
    var command: RESPCommand
    /// Completed with the reply (an error reply is a value, ``RESPValue/error(_:)``); nil for a command whose
    /// answer arrives as a push (SUBSCRIBE and UNSUBSCRIBE in RESP3, their confirmations in RESP2).
    var promise: EventLoopPromise<RESPValue>?
    /// How long the reply may take before the connection is closed with ``BatonError/Code/timeout``.
    var timeout: TimeAmount?
}

/// Matches replies to commands in the order they were sent (so any number of commands may be in flight on one
/// connection: pipelining), hands pushes to `onPush`, and fails every waiting command when the connection
/// fails.
///
/// A reply that arrives with no command waiting, a malformed frame, or a reply that is late beyond its
/// request's timeout closes the connection: the stream can no longer be trusted to line up with the commands.
///
/// With a ``Probe``, a connection that has read nothing for the probe's interval sends `PING` (allowed in RESP2
/// subscriber mode too, where it is answered `pong` as an array) and is closed with
/// ``BatonError/Code/timeout`` when the answer does not come within the probe's timeout: a connection that a NAT
/// or firewall dropped silently (no reset, no answer) is noticed within interval + timeout, whether it waits for
/// pushes or for a reply.
final class RESPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        /// Nil for the probe's own PING.
        var promise: EventLoopPromise<RESPValue>?
        var deadline: NIODeadline?
        var name: String
    }

    /// How an idle connection is checked: after `interval` without reading anything it sends `PING`, and closes
    /// itself if the answer takes longer than `timeout`. One probe is shared by every connection of a store, which
    /// lowers it to the shortest ttl it is asked for (``adapt(toTTL:)``); connections read it at every check.
    final class Probe: Sendable {
        private let intervalNanoseconds: Atomic<Int64>
        private let timeoutNanoseconds: Atomic<Int64>

        init(interval: TimeAmount, timeout: TimeAmount) {
            intervalNanoseconds = Atomic(interval.nanoseconds)
            timeoutNanoseconds = Atomic(timeout.nanoseconds)
        }

        var interval: TimeAmount { .nanoseconds(intervalNanoseconds.load(ordering: .relaxed)) }
        var timeout: TimeAmount { .nanoseconds(timeoutNanoseconds.load(ordering: .relaxed)) }

        /// Lowers the interval to a quarter of `ttl` and the timeout to half of it (never below 50 ms), where they
        /// are longer: a connection that died silently is then noticed within three quarters of the shortest ttl
        /// in use. Never raises them.
        func adapt(toTTL ttl: Duration) {
            let nanoseconds = max(ttl.batonNanoseconds, 200_000_000)
            intervalNanoseconds.min(nanoseconds / 4, ordering: .relaxed)
            timeoutNanoseconds.min(nanoseconds / 2, ordering: .relaxed)
        }
    }

    private var pending = CircularBuffer<Pending>()
    /// The one timer of the connection, armed for the oldest command's deadline (replies come in order, so the
    /// oldest command is the first to time out). It is not re-armed per command: when it fires early it re-arms.
    private var timer: Scheduled<Void>?
    private var closedError: BatonError?
    private let onPush: @Sendable (RESPValue) -> Void
    private let pushArraysInRESP2: Bool
    private let peer: String
    private let probe: Probe?
    /// When the connection last read anything (a reply or a push).
    private var lastRead: NIODeadline = .now()
    /// When the probe's PING went out, while its answer is awaited.
    private var probeSentAt: NIODeadline?
    private var probeTimer: Scheduled<Void>?

    /// - Parameters:
    ///   - peer: how errors name the server (`host:port`, never with credentials).
    ///   - pushArraysInRESP2: treat RESP2 arrays that start with `message`, `subscribe` and the like as pushes
    ///     (a RESP2 connection in subscriber mode).
    ///   - probe: how a silent connection is detected; nil never probes.
    ///   - onPush: called on the event loop with every push.
    init(
        peer: String,
        pushArraysInRESP2: Bool = false,
        probe: Probe? = nil,
        onPush: @escaping @Sendable (RESPValue) -> Void
    ) {
        self.peer = peer
        self.pushArraysInRESP2 = pushArraysInRESP2
        self.probe = probe
        self.onPush = onPush
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startProbing(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startProbing(context: context)
        context.fireChannelActive()
    }

    private func startProbing(context: ChannelHandlerContext) {
        guard let probe, probeTimer == nil, closedError == nil else { return }
        lastRead = context.eventLoop.now
        scheduleProbe(context: context, at: lastRead + probe.interval)
    }

    private func scheduleProbe(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        probeTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.probeTimer = nil
            handler.probeTick(context: context)
        }
    }

    /// Closes the connection if the probe's answer is overdue; sends the probe if the connection has been silent
    /// for the interval; else waits for the interval to pass.
    private func probeTick(context: ChannelHandlerContext) {
        guard let probe, closedError == nil else { return }
        let now = context.eventLoop.now
        if let sent = probeSentAt {
            if now >= sent + probe.timeout {
                fail(context: context, BatonError.timeout("\(peer) did not answer PING within \(probe.timeout)"))
            } else {
                scheduleProbe(context: context, at: sent + probe.timeout)
            }
            return
        }
        guard now >= lastRead + probe.interval else {
            scheduleProbe(context: context, at: lastRead + probe.interval)
            return
        }
        probeSentAt = now
        pending.append(Pending(promise: nil, deadline: nil, name: "PING"))
        var buffer = context.channel.allocator.buffer(capacity: 16)
        RESPCommand("PING").encode(into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        scheduleProbe(context: context, at: now + probe.timeout)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closedError {
            request.promise?.fail(closedError)
            promise?.fail(closedError)
            return
        }
        if let reply = request.promise {
            let now = context.eventLoop.now
            let deadline = request.timeout.map { now + $0 }
            pending.append(Pending(promise: reply, deadline: deadline, name: request.command.name))
            if let deadline, timer == nil { armTimer(context: context, at: deadline) }
        }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        request.command.encode(into: &buffer)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        if probe != nil { lastRead = context.eventLoop.now }
        if case .push = value {
            onPush(value)
            return
        }
        if pushArraysInRESP2, case .array(let parts) = value, let kind = parts.first?.string?.lowercased(),
            ["message", "pmessage", "subscribe", "unsubscribe", "psubscribe", "punsubscribe"].contains(kind)
        {
            onPush(.push(parts))
            return
        }
        guard let entry = pending.popFirst() else {
            fail(context: context, BatonError.storeUnavailable("\(peer) sent a reply to no command"))
            return
        }
        guard let promise = entry.promise else {
            // The probe's answer: the connection is alive; the next probe is due after another silent interval.
            probeSentAt = nil
            if let probe {
                probeTimer?.cancel()
                scheduleProbe(context: context, at: lastRead + probe.interval)
            }
            return
        }
        promise.succeed(value)
    }

    private func armTimer(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            handler.checkDeadlines(context: context)
        }
    }

    private func checkDeadlines(context: ChannelHandlerContext) {
        guard let oldest = pending.first(where: { $0.deadline != nil }), let deadline = oldest.deadline else { return }
        if deadline <= context.eventLoop.now {
            fail(context: context, BatonError.timeout("\(peer) did not answer \(oldest.name) in time"))
        } else {
            armTimer(context: context, at: deadline)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? BatonError {
            fail(context: context, error)
        } else if error is RESPProtocolError {
            fail(context: context, .storeUnavailable("\(peer) sent a malformed reply: \(error)", underlying: error))
        } else {
            fail(context: context, .storeUnavailable("the connection to \(peer) failed: \(error)", underlying: error))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(closedError ?? .storeUnavailable("the connection to \(peer) closed"))
        context.fireChannelInactive()
    }

    /// Fails every waiting command with `error` and closes the connection.
    private func fail(context: ChannelHandlerContext, _ error: BatonError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: BatonError) {
        if closedError == nil { closedError = error }
        timer?.cancel()
        timer = nil
        probeTimer?.cancel()
        probeTimer = nil
        while let entry = pending.popFirst() {
            entry.promise?.fail(error)
        }
    }
}
