import Baton
import NIOCore
import NIOEmbedded
import Testing

@testable import BatonRedis

/// The probe of a silent connection, on an `EmbeddedChannel` playing the server with the event loop's own clock.
@Suite struct RESPProbeTests {
    private func makeChannel(resp2Subscriber: Bool = false) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
        try channel.pipeline.syncOperations.addHandler(
            RESPChannelHandler(
                peer: "test:6379",
                pushArraysInRESP2: resp2Subscriber,
                probe: .init(interval: .milliseconds(500), timeout: .seconds(1))
            ) { _ in }
        )
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 6379)).wait()
        return channel
    }

    private func sent(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test("a connection that reads nothing sends PING, and closes when the answer does not come in time")
    func unansweredProbeClosesTheConnection() throws {
        let channel = try makeChannel()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(499))
        #expect(try sent(channel) == "")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try sent(channel) == "*1\r\n$4\r\nPING\r\n")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test("an answered probe keeps the connection; pushes and replies count as signs of life (RESP2 subscriber)")
    func answeredProbeKeepsTheConnection() throws {
        let channel = try makeChannel(resp2Subscriber: true)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(500))
        #expect(try sent(channel) == "*1\r\n$4\r\nPING\r\n")
        // RESP2 subscriber mode answers PING with an array.
        try channel.writeInbound(ByteBuffer(string: "*2\r\n$4\r\npong\r\n$0\r\n\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(400))
        // A message read meanwhile puts the next probe off.
        try channel.writeInbound(ByteBuffer(string: "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nk\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(400))
        #expect(try sent(channel) == "")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        #expect(try sent(channel) == "*1\r\n$4\r\nPING\r\n")
        try channel.writeInbound(ByteBuffer(string: "*2\r\n$4\r\npong\r\n$0\r\n\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test("the probe is lowered to a quarter (interval) and a half (timeout) of the shortest ttl, never raised")
    func probeFollowsTheShortestTTL() {
        let probe = RESPChannelHandler.Probe(interval: .milliseconds(500), timeout: .seconds(1))
        probe.adapt(toTTL: .seconds(10))
        #expect(probe.interval == .milliseconds(500) && probe.timeout == .seconds(1))
        probe.adapt(toTTL: .seconds(1))
        #expect(probe.interval == .milliseconds(250) && probe.timeout == .milliseconds(500))
        probe.adapt(toTTL: .seconds(2))
        #expect(probe.interval == .milliseconds(250) && probe.timeout == .milliseconds(500))
        probe.adapt(toTTL: .milliseconds(1))
        #expect(probe.interval == .milliseconds(50) && probe.timeout == .milliseconds(100))
    }
}
