import Testing

@testable import BatonServer

/// The bounded buffer between a store's change feed and a slow event-stream client.
@Suite("HTTP service: the event stream's outbox")
struct StreamOutboxTests {
    private typealias Outbox = StreamOutbox<Int, String>

    /// The items the outbox hands out now, until it would wait (taken with a bounded wait each).
    private func drain(_ outbox: Outbox, count: Int) async -> [String] {
        var items: [String] = []
        for _ in 0..<count {
            switch await outbox.next() {
            case .event(let value)?: items.append("event \(value)")
            case .keepAlive?: items.append("keep-alive")
            case .end(let ending)?: items.append("end \(ending)")
            case nil: items.append("nil")
            }
        }
        return items
    }

    @Test("in a full outbox the oldest waiting change is dropped: the newest leader always arrives")
    func newestWins() async {
        let outbox = Outbox(capacity: 3)
        for value in 1...5 { outbox.post(value) }
        #expect(outbox.dropped == 2)
        outbox.finish("done")
        #expect(await drain(outbox, count: 5) == ["event 3", "event 4", "event 5", "end done", "nil"])
    }

    @Test("a keep-alive waits only while no change does, and only once")
    func keepAlive() async {
        let outbox = Outbox(capacity: 2)
        outbox.postKeepAlive()
        outbox.postKeepAlive()
        #expect(await drain(outbox, count: 1) == ["keep-alive"])
        outbox.postKeepAlive()
        outbox.post(7)
        outbox.postKeepAlive()
        outbox.finish("done")
        #expect(await drain(outbox, count: 3) == ["event 7", "end done", "nil"])
    }

    @Test("the first ending wins and later posts are ignored")
    func ending() async {
        let outbox = Outbox(capacity: 2)
        outbox.post(1)
        outbox.finish("feed ended")
        outbox.finish("shutdown")
        outbox.post(2)
        outbox.postKeepAlive()
        #expect(await drain(outbox, count: 3) == ["event 1", "end feed ended", "nil"])
    }

    @Test("a waiting reader gets what is posted, and cancellation ends its wait")
    func waiting() async throws {
        let outbox = Outbox(capacity: 2)
        async let first = drain(outbox, count: 1)
        // Posted whether or not the reader waits already: it gets the event either way.
        outbox.post(42)
        #expect(await first == ["event 42"])

        let reader = Task { await outbox.next() }
        reader.cancel()
        #expect(await reader.value == nil)
    }
}
