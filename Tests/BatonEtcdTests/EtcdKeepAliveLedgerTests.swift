import Testing

@testable import BatonEtcd

/// How answers on the keep-alive stream are matched to the keep-alives waiting for them.
@Suite("etcd keep-alive answers")
struct EtcdKeepAliveLedgerTests {
    @Test("a late answer to a keep-alive whose caller gave up is dropped, not credited to the next one")
    func lateAnswerIsNotCreditedToTheNextRequest() {
        var ledger = KeepAliveLedger<String>()
        ledger.sent(lease: 7, id: 0, stream: 1, waiter: "first")
        // The first caller's timeout passes before etcd answers.
        #expect(ledger.abandon(lease: 7, id: 0) == "first")
        ledger.sent(lease: 7, id: 1, stream: 1, waiter: "second")
        // etcd answers in order: the first answer is the first request's, late; nobody gets it.
        #expect(ledger.answered(lease: 7, stream: 1) == nil)
        #expect(ledger.answered(lease: 7, stream: 1) == "second")
        #expect(ledger.count == 0)
    }

    @Test("answers go to the requests of their own lease and stream, oldest first")
    func answersMatchLeaseAndStream() {
        var ledger = KeepAliveLedger<String>()
        ledger.sent(lease: 1, id: 0, stream: 1, waiter: "a1")
        ledger.sent(lease: 2, id: 1, stream: 1, waiter: "b1")
        ledger.sent(lease: 1, id: 2, stream: 2, waiter: "a2")
        ledger.sent(lease: 1, id: 3, stream: 2, waiter: "a3")
        #expect(ledger.answered(lease: 1, stream: 2) == "a2")
        #expect(ledger.answered(lease: 2, stream: 1) == "b1")
        #expect(ledger.answered(lease: 1, stream: 1) == "a1")
        // An answer nobody asked for (on this stream) is dropped.
        #expect(ledger.answered(lease: 2, stream: 2) == nil)
        #expect(ledger.answered(lease: 1, stream: 2) == "a3")
    }

    @Test("a stream that ends takes its requests with it; abandoned ones are not resumed twice")
    func endedStreamTakesItsRequests() {
        var ledger = KeepAliveLedger<String>()
        ledger.sent(lease: 1, id: 0, stream: 1, waiter: "old")
        ledger.sent(lease: 1, id: 1, stream: 1, waiter: "gave up")
        ledger.sent(lease: 1, id: 2, stream: 2, waiter: "new")
        #expect(ledger.abandon(lease: 1, id: 1) == "gave up")
        #expect(ledger.abandon(lease: 1, id: 1) == nil)
        #expect(ledger.ended(stream: 1) == ["old"])
        #expect(ledger.answered(lease: 1, stream: 2) == "new")
        #expect(ledger.removeAll().isEmpty)
    }
}
