@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Testing

/// A term handed to a waiting candidate, taken from the store's message without a request: promised from the
/// candidate's last refused ask, taken once, never from a message older than what the store has seen since.
@Suite("Handed terms")
struct HandedTermsTests {
    let clock = ManualClock()
    let ttl = Duration.seconds(30)

    private func term(_ holder: String, _ token: FencingToken, metadata: String? = nil, ttl: Duration? = nil)
        -> PushedLeaderState
    {
        .term(LeaderInfo(holder: holder, token: token, metadata: metadata, ttl: ttl ?? self.ttl))
    }

    /// Refused at t = 0 by the leader of token 4, the candidate is handed token 5 at some later time: at t = 3 s
    /// the term is promised for 27 s (from the ask), once.
    @Test func aHandedTermIsPromisedFromTheLastRefusalAndTakenOnce() {
        let terms = HandedTerms(clock: BatonClock(clock))
        let sent = Duration.zero
        terms.refused(
            key: "k", holder: "b", ttl: ttl, metadata: "m", sentAt: sent, leader: LeaderInfo(holder: "a", token: 4))
        _ = clock.advance(by: .seconds(3))
        let lease = terms.handedTerm(
            key: "k", holder: "b", ttl: ttl, metadata: "m", pushed: term("b", 5, metadata: "m"))
        #expect(lease == Lease(key: "k", holder: "b", token: 5, ttl: .seconds(27), metadata: "m"))
        #expect(
            terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: "m", pushed: term("b", 5, metadata: "m"))
                == nil, "taken twice")
    }

    /// A later refusal moves the promise on; too little left (half the ttl or less) is not promised.
    @Test func theLatestRefusalCountsAndHalfTheTTLMustBeLeft() {
        let terms = HandedTerms(clock: BatonClock(clock))
        let leader = LeaderInfo(holder: "a", token: 4)
        terms.refused(key: "k", holder: "b", ttl: ttl, metadata: nil, sentAt: .zero, leader: leader)
        _ = clock.advance(by: .seconds(16))
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 5)) == nil)
        terms.refused(key: "k", holder: "b", ttl: ttl, metadata: nil, sentAt: .seconds(16), leader: leader)
        _ = clock.advance(by: .seconds(1))
        #expect(
            terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 5))?.ttl
                == .seconds(29))
    }

    /// A message whose token is not above every token seen since the refusal (in a refusal, a grant, a renew, a
    /// release) is old: it is not taken. Nor one for another holder, other metadata or ttl, or a free key.
    @Test func oldOrOtherMessagesAreNotTaken() {
        let terms = HandedTerms(clock: BatonClock(clock))
        terms.refused(
            key: "k", holder: "b", ttl: ttl, metadata: nil, sentAt: .zero, leader: LeaderInfo(holder: "a", token: 7))
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 7)) == nil)
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 6)) == nil)
        terms.saw(key: "k", token: 9)
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 9)) == nil)
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("c", 10)) == nil)
        #expect(
            terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 10, metadata: "x"))
                == nil)
        #expect(
            terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 10, ttl: .seconds(5)))
                == nil)
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: .free(lastToken: 10)) == nil)
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: nil) == nil)
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 10))?.token == 10)
    }

    /// A candidate that was never refused, or stopped waiting (it took the key, or left the queue), takes
    /// nothing from a message: its acquire asks the store.
    @Test func onlyCandidatesStillWaitingTakeATerm() {
        let terms = HandedTerms(clock: BatonClock(clock))
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 5)) == nil)
        let leader = LeaderInfo(holder: "a", token: 4)
        terms.refused(key: "k", holder: "b", ttl: ttl, metadata: nil, sentAt: .zero, leader: leader)
        terms.refused(key: "k", holder: "c", ttl: ttl, metadata: nil, sentAt: .zero, leader: leader)
        terms.stopped(key: "k", holder: "b")
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 5)) == nil)
        // c still waits; the token b's term would have had is seen by c's store too.
        #expect(terms.handedTerm(key: "k", holder: "c", ttl: ttl, metadata: nil, pushed: term("c", 6))?.token == 6)
    }

    /// A store whose reads tell when a term expires (SQLite) promises a handed term until then: from the latest
    /// read that names the candidate, under the same rules (still waiting, a token above those seen, once).
    @Test func aTermFromAReadIsPromisedUntilItsExpiry() {
        let terms = HandedTerms(clock: BatonClock(clock))
        let leader = LeaderInfo(holder: "a", token: 4)
        // A read before any refusal is not kept.
        terms.read(key: "k", leader: LeaderInfo(holder: "b", token: 5, ttl: ttl), expiresAt: .seconds(30))
        terms.refused(key: "k", holder: "b", ttl: ttl, metadata: nil, sentAt: .zero, leader: leader)
        #expect(terms.handedTermFromRead(key: "k", holder: "b", ttl: ttl, metadata: nil) == nil)
        _ = clock.advance(by: .seconds(10))
        terms.read(key: "k", leader: LeaderInfo(holder: "b", token: 5, ttl: ttl), expiresAt: .seconds(38))
        _ = clock.advance(by: .seconds(2))
        #expect(
            terms.handedTermFromRead(key: "k", holder: "b", ttl: ttl, metadata: nil)
                == Lease(key: "k", holder: "b", token: 5, ttl: .seconds(26)))
        #expect(terms.handedTermFromRead(key: "k", holder: "b", ttl: ttl, metadata: nil) == nil, "taken twice")

        // c is refused while b leads with token 5.
        terms.refused(
            key: "k", holder: "c", ttl: ttl, metadata: nil, sentAt: .seconds(12),
            leader: LeaderInfo(holder: "b", token: 5))
        terms.read(key: "k", leader: LeaderInfo(holder: "c", token: 5, ttl: ttl), expiresAt: .seconds(40))
        #expect(terms.handedTermFromRead(key: "k", holder: "c", ttl: ttl, metadata: nil) == nil, "an old token")
        terms.read(key: "k", leader: LeaderInfo(holder: "c", token: 6, ttl: ttl), expiresAt: .seconds(20))
        #expect(terms.handedTermFromRead(key: "k", holder: "c", ttl: ttl, metadata: nil) == nil, "8 s of 30 left")
        terms.read(key: "k", leader: nil, expiresAt: .seconds(40))
        #expect(terms.handedTermFromRead(key: "k", holder: "c", ttl: ttl, metadata: nil) == nil, "a free key")
    }

    /// Where the holder may also ask through other instances (``HandedTerms/holderMayAskElsewhere``), no term is
    /// taken without a request, from a message or a read: the holder may have taken and released it elsewhere while
    /// this instance's news was late. The same term is taken once the acquire runs without that mark.
    @Test func noTermIsTakenWithoutARequestWhereTheHolderMayAskElsewhere() {
        let terms = HandedTerms(clock: BatonClock(clock))
        terms.refused(
            key: "k", holder: "b", ttl: ttl, metadata: nil, sentAt: .zero, leader: LeaderInfo(holder: "a", token: 4))
        terms.read(key: "k", leader: LeaderInfo(holder: "b", token: 5, ttl: ttl), expiresAt: .seconds(30))
        HandedTerms.$holderMayAskElsewhere.withValue(true) {
            #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 5)) == nil)
            #expect(terms.handedTermFromRead(key: "k", holder: "b", ttl: ttl, metadata: nil) == nil)
        }
        #expect(terms.handedTerm(key: "k", holder: "b", ttl: ttl, metadata: nil, pushed: term("b", 5))?.token == 5)
    }

    /// Places of holders that stopped asking (a client gone from a long-running server) are dropped now and then,
    /// with their keys: after 2 ttl without an ask, a thousand abandoned keys are gone once another thousand
    /// refusals came.
    @Test func abandonedPlacesAreDropped() {
        let terms = HandedTerms(clock: BatonClock(clock))
        let leader = LeaderInfo(holder: "a", token: 4)
        for index in 0..<1000 {
            terms.refused(key: "old-\(index)", holder: "b", ttl: ttl, metadata: nil, sentAt: .zero, leader: leader)
        }
        #expect(terms.keysWithWaiters == 1000)
        _ = clock.advance(by: ttl * 2 + .seconds(1))
        for index in 0..<1000 {
            terms.refused(
                key: "new-\(index)", holder: "b", ttl: ttl, metadata: nil, sentAt: .seconds(61), leader: leader)
        }
        #expect(terms.keysWithWaiters <= 1000, "\(terms.keysWithWaiters) keys kept")
        #expect(terms.handedTermFromRead(key: "old-1", holder: "b", ttl: ttl, metadata: nil) == nil)
    }
}
