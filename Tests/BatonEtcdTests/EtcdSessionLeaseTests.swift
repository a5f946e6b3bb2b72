import Baton
import BatonTestKit
import Foundation
import Synchronization
import Testing

@testable import BatonEtcd

/// Terms that start at once share the store's session lease of their ttl; the store ends a term whose holder
/// stopped renewing, since the lease lives on for the others. The store's clock is the test's: each upkeep is
/// run by the test at the time it sets.
@Suite("etcd session leases") struct EtcdSessionLeaseTests {
    /// A store whose upkeep runs only when the test calls it.
    private func store(_ url: String, clock: ManualClock) throws -> EtcdLeaseStore {
        var configuration = EtcdLeaseStore.Configuration()
        configuration.maintenanceInterval = .seconds(3600)
        return try EtcdLeaseStore(url: try StoreURL(url), configuration: configuration, clock: clock)
    }

    @Test("a term on the session lease whose holder stops renewing ends after its ttl; the others go on")
    func aTermWhoseHolderStopsRenewingEnds() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let clock = ManualClock()
        let store = try store(url, clock: clock)
        let observer = try EtcdLeaseStore(url)
        try await withRunning([store, observer]) {
            let ttl = Duration.seconds(30)
            let (stopped, renewed) = (unique("session-stopped"), unique("session-renewed"))
            let a = try #require(try await store.acquire(key: stopped, holder: "a", ttl: ttl, metadata: nil).lease)
            var b = try #require(try await store.acquire(key: renewed, holder: "b", ttl: ttl, metadata: nil).lease)
            let leaseOfA = try await observer.readElection(stopped).first?.lease
            let leaseOfB = try await observer.readElection(renewed).first?.lease
            #expect(leaseOfA != nil && leaseOfA == leaseOfB, "both terms are on the store's one lease of 30 s")

            // b renews every 10 s of the store's clock; a never does.
            for second in [10, 20, 29] {
                clock.advance(to: .zero + .seconds(second))
                if second < 29 { b = try await store.renew(b, ttl: ttl) }
                await store.upkeep()
            }
            #expect(try await observer.current(key: stopped)?.holder == "a", "within its ttl a's term goes on")
            clock.advance(to: .zero + .seconds(31))
            b = try await store.renew(b, ttl: ttl)
            await store.upkeep()
            #expect(try await observer.current(key: stopped) == nil, "31 s after a's last ask its term is over")
            #expect(try await observer.current(key: renewed)?.token == b.token, "b's term, renewed, goes on")
            await #expect(throws: BatonError.self, "a's late renew fails") {
                _ = try await store.renew(a, ttl: ttl)
            }
            let next = try #require(
                try await observer.acquire(key: stopped, holder: "c", ttl: ttl, metadata: nil).lease,
                "another candidate takes the key")
            #expect(next.token > a.token)
            try await observer.release(next)
            try await store.release(b)
        }
    }

    @Test("a term renewed through another instance moves onto its session lease, and the first does not end it")
    func aTermRenewedElsewhereMoves() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let clock = ManualClock()
        let first = try store(url, clock: clock)
        let second = try store(url, clock: clock)
        let observer = try EtcdLeaseStore(url)
        try await withRunning([first, second, observer]) {
            let ttl = Duration.seconds(30)
            let key = unique("session-moved")
            let other = unique("session-other")
            var lease = try #require(try await first.acquire(key: key, holder: "a", ttl: ttl, metadata: nil).lease)
            // The second instance has a session lease of its own for 30 s.
            let elsewhere = try #require(
                try await second.acquire(key: other, holder: "x", ttl: ttl, metadata: nil).lease)
            let before = try await observer.readElection(key).first?.lease
            clock.advance(to: .zero + .seconds(10))
            lease = try await second.renew(lease, ttl: ttl)
            let after = try await observer.readElection(key).first?.lease
            let secondSession = try await observer.readElection(other).first?.lease
            #expect(before != after && after == secondSession, "the term moved onto the second's session lease")
            // Past a's last ask through the first instance: the first's upkeep must not end a term renewed
            // elsewhere.
            clock.advance(to: .zero + .seconds(35))
            lease = try await second.renew(lease, ttl: ttl)
            await first.upkeep()
            #expect(try await observer.current(key: key)?.token == lease.token, "the term goes on")
            try await second.release(lease)
            try await second.release(elsewhere)
        }
    }

    /// Puts the keys of a term of `holder` for `key` on `store`'s session lease (the lease of `other`'s term), as a
    /// put whose answer was lost would have, and tells the store so; returns the term's token.
    private func lostPut(_ store: EtcdLeaseStore, key: String, holder: String, leaseOf other: String) async throws
        -> Int64
    {
        let session = try #require(try await store.readElection(other).first?.lease)
        let put = try await store.txn(
            "test",
            compare: [],
            success: [
                .put(EtcdKeyLayout.candidateKey(key, lease: session), value: Data(), lease: session),
                .put(
                    EtcdKeyLayout.campaignKey(key, lease: session),
                    value: Data((EtcdLeaseStore.leadingMark + holder).utf8),
                    lease: session
                ),
            ]
        )
        let suspect = EtcdCampaignMachine.Suspect(name: session, lease: session, ttlSeconds: 30, since: .zero)
        store.state.withLock { $0.machine.suspect(.init(key: key, holder: holder), suspect) }
        return put.header.revision
    }

    @Test("a term whose put got no answer, and whose holder does not come back, ends after its ttl")
    func aLostPutEnds() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let clock = ManualClock()
        let store = try store(url, clock: clock)
        let observer = try EtcdLeaseStore(url)
        try await withRunning([store, observer]) {
            let ttl = Duration.seconds(30)
            let (key, other) = (unique("lost-put"), unique("lost-put-other"))
            var kept = try #require(try await store.acquire(key: other, holder: "x", ttl: ttl, metadata: nil).lease)
            _ = try await lostPut(store, key: key, holder: "a", leaseOf: other)
            clock.advance(to: .zero + .seconds(20))
            kept = try await store.renew(kept, ttl: ttl)
            await store.upkeep()
            #expect(try await observer.current(key: key)?.holder == "a", "within its ttl the term stays")
            clock.advance(to: .zero + .seconds(31))
            kept = try await store.renew(kept, ttl: ttl)
            await store.upkeep()
            #expect(try await observer.current(key: key) == nil, "past its ttl the store ended it")
            #expect(try await observer.current(key: other)?.token == kept.token, "the renewed term goes on")
            try await store.release(kept)
        }
    }

    @Test("a holder whose put got no answer takes its term back by acquiring again, and the store leaves it")
    func aLostPutIsTakenBack() async throws {
        guard let url = try EtcdTestServer.value() else { return }
        let clock = ManualClock()
        let store = try store(url, clock: clock)
        let observer = try EtcdLeaseStore(url)
        try await withRunning([store, observer]) {
            let ttl = Duration.seconds(30)
            let (key, other) = (unique("lost-put-back"), unique("lost-put-back-other"))
            var kept = try #require(try await store.acquire(key: other, holder: "x", ttl: ttl, metadata: nil).lease)
            let token = try await lostPut(store, key: key, holder: "a", leaseOf: other)
            clock.advance(to: .zero + .seconds(10))
            var again = try #require(try await store.acquire(key: key, holder: "a", ttl: ttl, metadata: nil).lease)
            #expect(again.token == token, "the holder's own term, not a new one")
            clock.advance(to: .zero + .seconds(31))
            again = try await store.renew(again, ttl: ttl)
            kept = try await store.renew(kept, ttl: ttl)
            await store.upkeep()
            #expect(try await observer.current(key: key)?.token == token, "the term taken back goes on")
            try await store.release(again)
            try await store.release(kept)
        }
    }
}
