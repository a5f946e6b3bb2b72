import Baton
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import BatonRedis

/// The client's pipeline with an `EmbeddedChannel` playing the server: commands are read as bytes from the
/// channel's outbound side, and replies written into its inbound side.
@Suite struct RESPChannelHandlerTests {
    final class Pushes: Sendable {
        let values = Mutex<[RESPValue]>([])
        func append(_ value: RESPValue) { values.withLock { $0.append(value) } }
        var all: [RESPValue] { values.withLock { $0 } }
    }

    private func makeChannel(pushes: Pushes = Pushes(), resp2Subscriber: Bool = false) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
        try channel.pipeline.syncOperations.addHandler(
            RESPChannelHandler(peer: "test:6379", pushArraysInRESP2: resp2Subscriber) { pushes.append($0) }
        )
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    private func send(
        _ channel: EmbeddedChannel,
        _ command: RESPCommand,
        timeout: TimeAmount? = nil
    ) throws -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        try channel.writeOutbound(RESPRequest(command: command, promise: promise, timeout: timeout))
        return promise.futureResult
    }

    private func sent(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func encodesCommandsAsArraysOfBulkStrings() throws {
        let channel = try makeChannel()
        _ = try send(channel, RESPCommand("SET", "key", "välue", ""))
        #expect(try sent(channel) == "*4\r\n$3\r\nSET\r\n$3\r\nkey\r\n$6\r\nvälue\r\n$0\r\n\r\n")
        _ = try? channel.finish()
    }

    /// Three commands in flight at once get their own replies, in order, whatever the reply chunks.
    @Test func pipelinedRepliesMatchCommandsInOrder() throws {
        let channel = try makeChannel()
        let first = try send(channel, RESPCommand("GET", "a"))
        let second = try send(channel, RESPCommand("GET", "b"))
        let third = try send(channel, RESPCommand("INCR", "c"))
        #expect(try sent(channel).hasPrefix("*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"))
        try channel.writeInbound(ByteBuffer(string: "$1\r\nA\r\n_\r"))
        #expect(try first.wait() == .bulk("A"))
        try channel.writeInbound(ByteBuffer(string: "\n:4"))
        #expect(try second.wait() == .null)
        try channel.writeInbound(ByteBuffer(string: "2\r\n"))
        #expect(try third.wait() == .integer(42))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    /// Error replies are values: the connection stays usable.
    @Test func errorRepliesAreValues() throws {
        let channel = try makeChannel()
        let reply = try send(channel, RESPCommand("EVALSHA", "abc", "0"))
        try channel.writeInbound(ByteBuffer(string: "-NOSCRIPT No matching script.\r\n"))
        #expect(try reply.wait() == .error("NOSCRIPT No matching script."))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    /// Pushes go to the push handler, not to the waiting command, even between a command and its reply.
    @Test func pushesAreRoutedAside() throws {
        let pushes = Pushes()
        let channel = try makeChannel(pushes: pushes)
        let ping = try send(channel, RESPCommand("PING"))
        try channel.writeInbound(ByteBuffer(string: ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\n7\r\n+PONG\r\n"))
        #expect(try ping.wait() == .simpleString("PONG"))
        #expect(pushes.all == [.push([.bulk("message"), .bulk("c"), .bulk("7")])])
        _ = try? channel.finish()
    }

    /// In RESP2 a subscriber connection's `message` arrays are pushes too; a `pong` array is a reply.
    @Test func resp2SubscriberMessagesArePushes() throws {
        let pushes = Pushes()
        let channel = try makeChannel(pushes: pushes, resp2Subscriber: true)
        let ping = try send(channel, RESPCommand("PING"))
        try channel.writeInbound(
            ByteBuffer(string: "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n")
        )
        #expect(try ping.wait() == .array([.bulk("pong"), .bulk("")]))
        #expect(pushes.all == [.push([.bulk("subscribe"), .bulk("c"), .integer(1)])])
        _ = try? channel.finish()
    }

    /// A malformed frame fails every command in flight with a clear error and closes the connection.
    @Test func malformedFrameClosesTheConnection() throws {
        let channel = try makeChannel()
        let first = try send(channel, RESPCommand("GET", "a"))
        let second = try send(channel, RESPCommand("GET", "b"))
        _ = try? channel.writeInbound(ByteBuffer(string: "?garbage\r\n"))
        for future in [first, second] {
            #expect {
                _ = try future.wait()
            } throws: { error in
                let error = error as? BatonError
                return error?.code == .storeUnavailable && error?.message.contains("malformed") == true
            }
        }
        #expect(!channel.isActive)
        #expect(throws: (any Error).self) { _ = try send(channel, RESPCommand("GET", "c")).wait() }
    }

    /// A reply with no command waiting closes the connection.
    @Test func unexpectedReplyClosesTheConnection() throws {
        let channel = try makeChannel()
        _ = try? channel.writeInbound(ByteBuffer(string: "+OK\r\n"))
        #expect(!channel.isActive)
    }

    /// A command without a reply in time fails with `timeout`, and the others in flight with it.
    @Test func commandTimeout() throws {
        let channel = try makeChannel()
        let slow = try send(channel, RESPCommand("BLPOP", "q", "0"), timeout: .seconds(1))
        let next = try send(channel, RESPCommand("GET", "a"), timeout: .seconds(5))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(throws: BatonError.self) { _ = try slow.wait() }
        do {
            _ = try slow.wait()
        } catch let error as BatonError {
            #expect(error.code == .timeout)
        }
        #expect(throws: BatonError.self) { _ = try next.wait() }
        #expect(!channel.isActive)
    }

    /// The server closing the connection fails the commands in flight with `storeUnavailable`.
    @Test func closeFailsCommandsInFlight() throws {
        let channel = try makeChannel()
        let reply = try send(channel, RESPCommand("GET", "a"))
        channel.pipeline.fireChannelInactive()
        #expect {
            _ = try reply.wait()
        } throws: { error in
            (error as? BatonError)?.code == .storeUnavailable
        }
    }

    @Test func sha1OfScripts() {
        #expect(SHA1.hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1.hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(
            SHA1.hex(String(repeating: "a", count: 1000)) == "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        )
    }
}
