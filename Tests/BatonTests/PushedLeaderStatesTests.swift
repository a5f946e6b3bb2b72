@_spi(BatonStoreKit) import Baton
import Synchronization
import Testing

/// Change feeds that take a key's state from the store's change messages instead of reading it.
@Suite("Pushed leader states")
struct PushedLeaderStatesTests {
    /// A message is used only when it is news: after the feed's last read or message, and not older than what the
    /// feed knows (a message published before a read may arrive after it).
    @Test func theFeedReaderUsesOnlyNewerMessages() async throws {
        let payloads = PushedLeaderStates(watched: { ["k"] })
        let looks = Mutex(0)
        let server = Mutex<(LeaderInfo?, FeedVersion?)>((nil, FeedVersion(token: 10, free: true)))
        let reader = PushedStateFeedReader(key: "k", states: payloads) {
            looks.withLock { $0 += 1 }
            return server.withLock { $0 }
        }
        func term(_ token: FencingToken) -> PushedLeaderState {
            .term(LeaderInfo(holder: "h\(token)", token: token, ttl: .seconds(1), remaining: .seconds(1)))
        }
        // A message from before the first read is not news.
        payloads.record("k", term(9))
        #expect(try await reader.read() == nil)
        #expect(looks.withLock { $0 } == 1)
        // The term that follows: taken from the message.
        payloads.record("k", term(11))
        #expect(try await reader.read()?.token == 11)
        #expect(looks.withLock { $0 } == 1)
        // No new message (a timer, a reconnection): the server is read.
        server.withLock { $0 = (nil, FeedVersion(token: 11, free: true)) }
        #expect(try await reader.read() == nil)
        #expect(looks.withLock { $0 } == 2)
        // The message of term 11 arriving late is older than the free key read after it: read again.
        payloads.record("k", term(11))
        #expect(try await reader.read() == nil)
        #expect(looks.withLock { $0 } == 3)
        // A message without a state (an expiry event): read.
        payloads.record("k", nil)
        _ = try await reader.read()
        #expect(looks.withLock { $0 } == 4)
        // A release message after term 12.
        payloads.record("k", term(12))
        #expect(try await reader.read()?.token == 12)
        payloads.record("k", .free(lastToken: 12))
        #expect(try await reader.read() == nil)
        #expect(looks.withLock { $0 } == 4)
    }

    /// After ``PushedLeaderStates/forgetAll()`` (the connection that brought the messages closed, so some may be
    /// lost) a feed reads the store even if a message it has not taken yet was recorded before.
    @Test func forgottenMessagesAreNotUsed() async throws {
        let states = PushedLeaderStates(watched: { ["k"] })
        let looks = Mutex(0)
        let reader = PushedStateFeedReader(key: "k", states: states) {
            looks.withLock { $0 += 1 }
            return (LeaderInfo(holder: "b", token: 8, ttl: .seconds(1), remaining: .seconds(1)), nil)
        }
        #expect(try await reader.read()?.token == 8)
        states.record("k", .term(LeaderInfo(holder: "a", token: 7, ttl: .seconds(1), remaining: .seconds(1))))
        states.forgetAll()
        #expect(try await reader.read()?.holder == "b")
        #expect(looks.withLock { $0 } == 2)
        // A read that could not tell the version takes any later message.
        states.record("k", .free(lastToken: 3))
        #expect(try await reader.read() == nil)
        #expect(looks.withLock { $0 } == 2)
    }
}
