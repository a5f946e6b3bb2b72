@_spi(BatonStoreKit) import Baton
import Synchronization
import Testing

/// One push feed per key shared by its observers: one feed started, each observer seeing what its own feed
/// would, observers that stop themselves from within their call, and a new feed after the last one ended.
@Suite struct SharedLeaderObservationsTests {
    /// The feeds started: the observer each was given, and whether it was cancelled.
    final class Started: Sendable {
        struct Feed {
            var observer: LeaderObserver
            var cancelled = false
        }

        let feeds = Mutex<[Feed]>([])

        func start(_ observer: @escaping LeaderObserver) -> ChangeObservation {
            let index = feeds.withLock { feeds in
                feeds.append(Feed(observer: observer))
                return feeds.count - 1
            }
            return ChangeObservation(onCancel: { [self] in feeds.withLock { $0[index].cancelled = true } })
        }

        var count: Int { feeds.withLock { $0.count } }
        func isCancelled(_ index: Int) -> Bool { feeds.withLock { $0[index].cancelled } }
        func send(_ observation: LeaderObservation, to index: Int = 0) {
            feeds.withLock { $0[index] }.observer(observation)
        }
    }

    /// What one observer saw.
    final class Seen: Sendable {
        let seen = Mutex<[String]>([])
        var all: [String] { seen.withLock { $0 } }

        func observer(_ observation: LeaderObservation) {
            let text =
                switch observation {
                case .leader(let info): info?.holder ?? "none"
                case .ended: "ended"
                }
            seen.withLock { $0.append(text) }
        }
    }

    let a = LeaderInfo(holder: "a", token: 1)
    let b = LeaderInfo(holder: "b", token: 2)

    @Test func observersOfOneKeyShareOneFeed() throws {
        let shared = SharedLeaderObservations()
        let started = Started()
        let first = Seen()
        let second = Seen()
        let one = try shared.observe("k", first.observer, start: started.start)
        started.send(.leader(a))
        let two = try shared.observe("k", second.observer, start: started.start)
        #expect(started.count == 1)
        // The later observer starts with the last observation.
        #expect(second.all == ["a"])
        started.send(.leader(b))
        #expect(first.all == ["a", "b"])
        #expect(second.all == ["a", "b"])
        // Another key has its own feed.
        let other = try shared.observe("other", Seen().observer, start: started.start)
        #expect(started.count == 2)
        one.cancel()
        started.send(.leader(nil))
        #expect(first.all == ["a", "b"])
        #expect(second.all == ["a", "b", "none"])
        #expect(!started.isCancelled(0))
        // The last observer of the key leaves: its feed stops.
        two.cancel()
        #expect(started.isCancelled(0))
        #expect(!started.isCancelled(1))
        other.cancel()
        #expect(started.isCancelled(1))
    }

    /// A release reaches the herd of a process's waiting electors: the one the store names as the new leader (the
    /// next in line) is told first, whatever the order of the others.
    @Test func theNewLeadersObserverIsToldFirst() throws {
        let shared = SharedLeaderObservations()
        let started = Started()
        let order = Mutex<[String]>([])
        var observations: [ChangeObservation] = []
        for holder in (0..<50).map({ "w\($0)" }) + ["anonymous"] {
            let named: String? = holder == "anonymous" ? nil : holder
            observations.append(
                try ObserverHolder.$current.withValue(named) {
                    try shared.observe(
                        "k",
                        { observation in
                            if case .leader(let info?) = observation, info.holder != "a" {
                                order.withLock { $0.append(holder) }
                            }
                        }, start: started.start)
                })
        }
        started.send(.leader(a))
        for next in ["w37", "w0", "w49"] {
            order.withLock { $0 = [] }
            started.send(.leader(LeaderInfo(holder: next, token: 3)))
            let told = order.withLock { $0 }
            #expect(told.count == 51, "every observer is told")
            #expect(told.first == next, "\(next) was told after \(told.prefix(3))")
        }
        // A leader no observer here holds: everyone is told, in any order.
        order.withLock { $0 = [] }
        started.send(.leader(LeaderInfo(holder: "elsewhere", token: 4)))
        #expect(order.withLock { $0.count } == 51)
        for observation in observations { observation.cancel() }
    }

    @Test func anEndedFeedEndsEveryObserverAndTheNextObserverStartsAnother() throws {
        let shared = SharedLeaderObservations()
        let started = Started()
        let first = Seen()
        let second = Seen()
        let holder = Mutex<ChangeObservation?>(nil)
        // This observer cancels its own observation from within its call when the feed ends.
        let stopping = try shared.observe(
            "k",
            { observation in
                second.observer(observation)
                if case .ended = observation { holder.withLock { $0 }?.cancel() }
            },
            start: started.start)
        holder.withLock { $0 = stopping }
        let one = try shared.observe("k", first.observer, start: started.start)
        started.send(.leader(a))
        started.send(.ended(BatonError.storeUnavailable("gone")))
        #expect(first.all == ["a", "ended"])
        #expect(second.all == ["a", "ended"])
        // Nothing more reaches them from the ended feed.
        started.send(.leader(b))
        #expect(first.all == ["a", "ended"])
        let third = Seen()
        let three = try shared.observe("k", third.observer, start: started.start)
        #expect(started.count == 2)
        started.send(.leader(b), to: 1)
        #expect(third.all == ["b"])
        #expect(first.all == ["a", "ended"])
        one.cancel()
        three.cancel()
        #expect(started.isCancelled(1))
    }

    /// An observer that joins a running feed after its last observation, and sees it end before it reads again,
    /// is moved to a new feed, once: the read that failed began before it joined.
    @Test func anObserverWhoJoinedAFeedThatThenEndsGetsANewFeedOnce() throws {
        let shared = SharedLeaderObservations()
        let started = Started()
        let first = Seen()
        let late = Seen()
        let one = try shared.observe("k", first.observer, start: started.start)
        started.send(.leader(a))
        let two = try shared.observe("k", late.observer, start: started.start)
        #expect(late.all == ["a"])
        started.send(.ended(BatonError.storeUnavailable("a read that began before the late observer joined")))
        // The first observer saw the feed's observation and ends with it; the late one reads afresh.
        #expect(first.all == ["a", "ended"])
        #expect(late.all == ["a"])
        #expect(started.count == 2)
        started.send(.leader(b), to: 1)
        #expect(late.all == ["a", "b"])
        // Its second feed ending ends it: it is moved once only.
        let lateToo = Seen()
        let three = try shared.observe("k", lateToo.observer, start: started.start)
        started.send(.ended(BatonError.storeUnavailable("down")), to: 1)
        #expect(late.all == ["a", "b", "ended"])
        #expect(lateToo.all == ["b"])
        #expect(started.count == 3)
        // The first feed is not touched by the later ones.
        started.send(.leader(nil), to: 0)
        #expect(first.all == ["a", "ended"])
        one.cancel()
        two.cancel()
        three.cancel()
        #expect(started.isCancelled(2))
    }

    /// The observer that starts a feed is not moved when it ends: that was its own feed.
    @Test func theStarterOfAFeedThatFailsAtOnceEnds() throws {
        let shared = SharedLeaderObservations()
        let started = Started()
        let seen = Seen()
        let one = try shared.observe("k", seen.observer, start: started.start)
        started.send(.ended(BatonError.storeUnavailable("down")))
        #expect(seen.all == ["ended"])
        #expect(started.count == 1)
        one.cancel()
    }

    @Test func aFeedThatCannotStartFailsItsObserve() {
        let shared = SharedLeaderObservations()
        #expect(throws: BatonError.self) {
            try shared.observe("k", { _ in }, start: { _ in throw BatonError.storeUnavailable("closed") })
        }
        // The next observe tries again.
        let started = Started()
        let seen = Seen()
        let observation = try? shared.observe("k", seen.observer, start: started.start)
        #expect(observation != nil)
        #expect(started.count == 1)
        observation?.cancel()
    }
}
