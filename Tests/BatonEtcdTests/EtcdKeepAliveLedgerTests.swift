import Testing

@testable import BatonEtcd

/// The bookkeeping of the keep-alive stream: answers matched to requests in order, one request of a lease under
/// way per stream, callers coalesced onto the next request.
struct EtcdKeepAliveLedgerTests {
    @Test func callersWhileARequestIsUnderWayShareTheNextOne() {
        var ledger = KeepAliveLedger<String>()
        let r1 = ledger.ask(lease: 7, id: 0, stream: 1, waiter: "first")
        #expect(r1)
        let r2 = ledger.ask(lease: 7, id: 1, stream: 1, waiter: "second")
        #expect(!r2, "one request of a lease at a time")
        let r3 = ledger.ask(lease: 7, id: 2, stream: 1, waiter: "third")
        #expect(!r3)
        let r4 = ledger.ask(lease: 8, id: 3, stream: 1, waiter: "other lease")
        #expect(r4, "other leases are not held up")
        #expect(ledger.waitingForNext(7) == 2)
        let first = ledger.answered(lease: 7, stream: 1, current: 1)
        #expect(first.waiters == ["first"], "the answer goes to the callers of the request it answers")
        #expect(first.sendNext, "the callers that came later get a request of their own, sent now")
        #expect(ledger.waitingForNext(7) == 0)
        let next = ledger.answered(lease: 7, stream: 1, current: 1)
        #expect(Set(next.waiters) == ["second", "third"])
        #expect(!next.sendNext)
        let r5 = ledger.answered(lease: 8, stream: 1, current: 1)
        #expect(r5.waiters == ["other lease"])
        #expect(ledger.count == 0)
    }

    @Test func anAbandonedRequestKeepsItsPlace() {
        var ledger = KeepAliveLedger<String>()
        let r6 = ledger.ask(lease: 7, id: 0, stream: 1, waiter: "first")
        #expect(r6)
        let r7 = ledger.abandon(lease: 7, id: 0)
        #expect(r7 == "first")
        let r8 = ledger.abandon(lease: 7, id: 0)
        #expect(r8 == nil)
        let r9 = ledger.ask(lease: 7, id: 1, stream: 1, waiter: "second")
        #expect(!r9)
        // The late answer to the abandoned request is not credited to the later caller, whose request goes out
        // only now.
        let late = ledger.answered(lease: 7, stream: 1, current: 1)
        #expect(late.waiters.isEmpty)
        #expect(late.sendNext)
        let r10 = ledger.answered(lease: 7, stream: 1, current: 1)
        #expect(r10.waiters == ["second"])
        #expect(ledger.count == 0)
    }

    @Test func aCallerWaitingForTheNextRequestCanGiveUp() {
        var ledger = KeepAliveLedger<String>()
        let r11 = ledger.ask(lease: 7, id: 0, stream: 1, waiter: "first")
        #expect(r11)
        let r12 = ledger.ask(lease: 7, id: 1, stream: 1, waiter: "gave up")
        #expect(!r12)
        let r13 = ledger.abandon(lease: 7, id: 1)
        #expect(r13 == "gave up")
        let answer = ledger.answered(lease: 7, stream: 1, current: 1)
        #expect(answer.waiters == ["first"])
        #expect(!answer.sendNext, "no caller waits for another request")
    }

    @Test func answersAreMatchedPerStream() {
        var ledger = KeepAliveLedger<String>()
        let r14 = ledger.ask(lease: 1, id: 0, stream: 1, waiter: "a1")
        #expect(r14)
        let r15 = ledger.ask(lease: 2, id: 1, stream: 1, waiter: "b1")
        #expect(r15)
        // A new stream: a caller sends at once, though a request of the lease awaits its answer on the old one.
        let r16 = ledger.ask(lease: 1, id: 2, stream: 2, waiter: "a2")
        #expect(r16)
        let r17 = ledger.answered(lease: 1, stream: 2, current: 2)
        #expect(r17.waiters == ["a2"])
        let r18 = ledger.answered(lease: 2, stream: 1, current: 2)
        #expect(r18.waiters == ["b1"])
        let r19 = ledger.answered(lease: 1, stream: 1, current: 2)
        #expect(r19.waiters == ["a1"])
        let r20 = ledger.answered(lease: 2, stream: 2, current: 2)
        #expect(r20.waiters.isEmpty)
        #expect(ledger.count == 0)
    }

    @Test func aStreamThatEndsFailsItsRequestsAndTheirFollowers() {
        var ledger = KeepAliveLedger<String>()
        let r21 = ledger.ask(lease: 1, id: 0, stream: 1, waiter: "old")
        #expect(r21)
        let r22 = ledger.ask(lease: 1, id: 1, stream: 1, waiter: "follower")
        #expect(!r22)
        let r23 = ledger.ask(lease: 2, id: 2, stream: 2, waiter: "new")
        #expect(r23)
        let ended = ledger.ended(stream: 1)
        #expect(Set(ended) == ["old", "follower"])
        let r24 = ledger.answered(lease: 2, stream: 2, current: 2)
        #expect(r24.waiters == ["new"])
        let r25 = ledger.ask(lease: 3, id: 3, stream: 2, waiter: "last")
        #expect(r25)
        let r26 = ledger.removeAll()
        #expect(r26 == ["last"])
        #expect(ledger.count == 0)
    }
}
