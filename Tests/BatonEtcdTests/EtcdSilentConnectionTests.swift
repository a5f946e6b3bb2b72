@_spi(BatonStoreKit) import Baton
import BatonTestKit
import Testing

@testable import BatonEtcd

/// A waiting candidate's connection dies silently (blackholed: no reset, no answer) while the leader crashes: the
/// channel's HTTP/2 keep-alive pings notice, the channel reconnects, and the candidate leads.
@Suite("etcd silent connections")
struct EtcdSilentConnectionTests {
    @Test("a waiting candidate whose connection was blackholed takes over from a crashed leader within 3 ttl")
    func blackholedWaiterTakesOver() async throws {
        guard let url = try EtcdTestServer.value(), let host = try StoreURL(url).hosts.first, let port = host.port
        else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        let leaderStore = try EtcdLeaseStore(url)
        let waitingStore = try EtcdLeaseStore("etcd://127.0.0.1:\(proxy.port)")
        let failure = try await SilentConnectionScenario.check(
            leaderStore: LeaseStore(leaderStore), waitingStore: LeaseStore(waitingStore), proxy: proxy)
        #expect(failure == nil, "\(failure ?? "")")
    }
}

/// A handover shown by the successor's watch: taken from it without a request by a holder that asks through
/// this store only, and confirmed by a read where the holder may also ask through other instances.
@Suite("etcd handover confirmation")
struct EtcdHandoverConfirmationTests {
    /// The successor's store (behind `proxy`) and what it was handed: "a" led through `leaderStore` and released,
    /// and the successor's watch shows "b" handed the key, with token `handed.token`.
    private struct Handed {
        var leaderStore: EtcdLeaseStore
        var successorStore: EtcdLeaseStore
        var proxy: BlackholeProxy
        var key: String
        var handed: LeaderInfo
    }

    private static let ttl = Duration.seconds(10)

    private func withHandover(_ name: String, _ body: (Handed) async throws -> Void) async throws {
        guard let url = try EtcdTestServer.value(), let host = try StoreURL(url).hosts.first, let port = host.port
        else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        defer { proxy.close() }
        let leaderStore = try EtcdLeaseStore(url)
        let successorStore = try EtcdLeaseStore("etcd://127.0.0.1:\(proxy.port)")
        let key = unique(name)
        try await withRunning([leaderStore, successorStore]) {
            let lease = try #require(
                try await leaderStore.acquire(key: key, holder: "a", ttl: Self.ttl, metadata: nil).lease)
            #expect(
                try await successorStore.acquire(key: key, holder: "b", ttl: Self.ttl, metadata: nil, waiting: true)
                    .lease == nil)
            var successorFeed = try successorStore.changes(key: key).makeAsyncIterator()
            var leaderFeed = try leaderStore.changes(key: key).makeAsyncIterator()
            #expect(try await successorFeed.next()??.holder == "a")
            #expect(try await leaderFeed.next()??.holder == "a")
            try await waitForFreshViews(of: key, in: [leaderStore, successorStore])
            // The leader hands the key over; the successor's watch shows it.
            try await leaderStore.release(lease)
            #expect(try await successorFeed.next()??.holder == "b")
            try await waitForFreshViews(of: key, in: [successorStore])
            let handed = try #require(try await leaderStore.current(key: key))
            #expect(handed.holder == "b")
            try await body(
                Handed(
                    leaderStore: leaderStore, successorStore: successorStore, proxy: proxy, key: key, handed: handed))
        }
    }

    @Test("a holder that asks through this store only takes the handed term from the watch, without a request")
    func handedTermTakenWithoutARequest() async throws {
        try await withHandover("handover-taken") { handover in
            // Nothing gets through to etcd from the successor's store any more (as behind a partition, on its
            // connections and on new ones): only a term taken without a request can be answered.
            handover.proxy.setMode(.blackhole)
            let result = try await handover.successorStore.acquire(
                key: handover.key, holder: "b", ttl: Self.ttl, metadata: nil, waiting: true)
            let lease = try #require(result.lease, "the handed term was not taken: \(result)")
            #expect(lease.token == handover.handed.token)
            // Promised what the last keep-alive ensures: more than half the ttl, never more than the ttl.
            #expect(lease.ttl > Self.ttl / 2 && lease.ttl <= Self.ttl)
            handover.proxy.setMode(.pass)
            // It is the term etcd has, and it ends with a release through any instance.
            let current = try await handover.leaderStore.current(key: handover.key)
            #expect(current?.holder == "b" && current?.token == lease.token)
            try await handover.leaderStore.release(lease)
            #expect(try await handover.leaderStore.current(key: handover.key) == nil)
        }
    }

    /// Where the holder may ask elsewhere (a waiting acquire with `holderMayAskElsewhere`), or the acquire does
    /// not wait (an HTTP client's, which may come through any replica), a term handed over and then ended behind a
    /// silent watch is not started from the watch.
    @Test("a term handed over and then ended behind a silent watch is not started", arguments: [true, false])
    func staleSnapshotDoesNotStartATerm(waiting: Bool) async throws {
        try await withHandover("silent-handover") { handover in
            // The successor's connection goes silent, and its term ends behind the watch's back (here a
            // compare-and-delete of its keys from another store, as its holder would do through another replica).
            handover.proxy.blackholeOpenConnections()
            try await handover.leaderStore.release(
                Lease(key: handover.key, holder: "b", token: handover.handed.token, ttl: Self.ttl, metadata: nil))
            #expect(try await handover.leaderStore.current(key: handover.key) == nil)
            // The successor's acquire must not start the ended term from its snapshot: it reads first (and, once its
            // connection is replaced, leads with a new term).
            // A waiting acquire of a holder that may ask through other instances, or an acquire that does not wait
            // (an HTTP client's, which may come through any replica): both ask etcd.
            let result = try await HandedTerms.$holderMayAskElsewhere.withValue(waiting) {
                try await handover.successorStore.acquire(
                    key: handover.key, holder: "b", ttl: Self.ttl, metadata: nil, waiting: waiting)
            }
            if let next = result.lease {
                #expect(
                    next.token > handover.handed.token,
                    "the ended term \(handover.handed.token) was started from a stale snapshot")
                try await handover.successorStore.release(next)
            }
        }
    }

    private func waitForFreshViews(of key: String, in stores: [EtcdLeaseStore]) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !stores.allSatisfy({ $0.hasFreshView(of: key) }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
