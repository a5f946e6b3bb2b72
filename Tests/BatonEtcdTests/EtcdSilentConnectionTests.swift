import Baton
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

/// A handover shown by a watch that went silent is not taken on the watch's word.
@Suite("etcd handover confirmation")
struct EtcdHandoverConfirmationTests {
    @Test("a term handed over and then ended behind a silent watch is not started from the watch's snapshot")
    func staleSnapshotDoesNotStartATerm() async throws {
        guard let url = try EtcdTestServer.value(), let host = try StoreURL(url).hosts.first, let port = host.port
        else { return }
        let proxy = try BlackholeProxy(forwardingTo: host.name, port: port)
        let leaderStore = try EtcdLeaseStore(url)
        let successorStore = try EtcdLeaseStore("etcd://127.0.0.1:\(proxy.port)")
        let key = unique("silent-handover")
        try await withRunning([leaderStore, successorStore]) {
            let ttl = Duration.seconds(10)
            let lease = try #require(
                try await leaderStore.acquire(key: key, holder: "a", ttl: ttl, metadata: nil).lease)
            #expect(
                try await successorStore.acquire(key: key, holder: "b", ttl: ttl, metadata: nil, waiting: true).lease
                    == nil)
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
            // The successor's connection goes silent, and its term ends behind the watch's back (here a
            // compare-and-delete of its keys from another store; an operator's delete would do the same).
            proxy.blackholeOpenConnections()
            try await leaderStore.release(Lease(key: key, holder: "b", token: handed.token, ttl: ttl, metadata: nil))
            #expect(try await leaderStore.current(key: key) == nil)
            // The successor's acquire must not start the ended term from its snapshot: it reads first (and, once its
            // connection is replaced, leads with a new term).
            let result = try await successorStore.acquire(key: key, holder: "b", ttl: ttl, metadata: nil, waiting: true)
            if let next = result.lease {
                #expect(next.token > handed.token, "the ended term \(handed.token) was started from a stale snapshot")
                try await successorStore.release(next)
            }
            proxy.close()
        }
    }

    private func waitForFreshViews(of key: String, in stores: [EtcdLeaseStore]) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !stores.allSatisfy({ $0.hasFreshView(of: key) }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
