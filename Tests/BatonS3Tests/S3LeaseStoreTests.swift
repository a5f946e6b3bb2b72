@_spi(BatonStoreKit) import Baton
import BatonS3
import BatonTestKit
import Testing

/// The S3 store's own rules against the server: clock-safe takeover timed on each candidate's monotonic clock
/// (a ``ManualClock`` here, so no test sleeps and hopes), conditional writes that let exactly one racer win, a
/// paused leader that finds its term gone, and refused credentials.
@Suite struct S3LeaseStoreTests {
    static let ttl: Duration = .seconds(10)

    /// Running stores standing for separate processes, each on its own manual clock; all stopped after `body`.
    func withStores<T>(
        _ count: Int,
        _ body: ([LeaseStore], [ManualClock]) async throws -> T
    ) async throws -> T? {
        var drivers: [S3LeaseStore] = []
        var clocks: [ManualClock] = []
        for _ in 0..<count {
            let clock = ManualClock()
            guard let store = try S3TestServer.store(clock: BatonClock(clock)) else { return nil }
            drivers.append(store)
            clocks.append(clock)
        }
        return try await withRunning(drivers) { stores in try await body(stores, clocks) }
    }

    @Test func aHeldLeaseIsTakenOnlyAfterTheSameETagWasSeenForAFullTTL() async throws {
        _ = try await withStores(2) { stores, clocks in
            let key = unique("takeover")
            let old = try #require(
                try await stores[0].acquire(key: key, holder: "old", ttl: Self.ttl).lease)
            // The candidate starts timing when it first sees the lease object.
            guard
                case .held(let leader) = try await stores[1].acquire(
                    key: key, holder: "new", ttl: Self.ttl)
            else {
                Issue.record("a live lease was taken")
                return
            }
            #expect(leader.holder == "old" && leader.token == old.token && leader.remaining == Self.ttl)
            clocks[1].advance(by: Self.ttl - .milliseconds(1))
            #expect(try await stores[1].acquire(key: key, holder: "new", ttl: Self.ttl).lease == nil)
            // A renewal writes a new ETag, which restarts the candidate's timer.
            _ = try await stores[0].renew(old, ttl: Self.ttl)
            clocks[1].advance(by: .milliseconds(1))
            #expect(try await stores[1].acquire(key: key, holder: "new", ttl: Self.ttl).lease == nil)
            clocks[1].advance(by: Self.ttl - .milliseconds(1))
            #expect(try await stores[1].current(key: key)?.holder == "old")
            clocks[1].advance(by: .milliseconds(1))
            #expect(try await stores[1].current(key: key) == nil)
            let taken = try #require(
                try await stores[1].acquire(key: key, holder: "new", ttl: Self.ttl).lease)
            #expect(taken.token == old.token + 1)
        }
    }

    @Test(arguments: 0..<5)
    func twoCandidatesRacingForOneExpiredLeaseExactlyOneWins(_ round: Int) async throws {
        _ = try await withStores(3) { stores, clocks in
            let key = unique("race-\(round)")
            let old = try #require(
                try await stores[0].acquire(key: key, holder: "old", ttl: Self.ttl).lease)
            for index in 1...2 {
                #expect(
                    try await stores[index].acquire(key: key, holder: "c\(index)", ttl: Self.ttl).lease
                        == nil)
                clocks[index].advance(by: Self.ttl)
            }
            async let first = stores[1].acquire(key: key, holder: "c1", ttl: Self.ttl)
            async let second = stores[2].acquire(key: key, holder: "c2", ttl: Self.ttl)
            let results = try await [first, second]
            let winners = results.compactMap(\.lease)
            try #require(winners.count == 1, "\(results)")
            let winner = winners[0]
            #expect(winner.token == old.token + 1)
            for case .held(let leader) in results {
                #expect(leader.holder == winner.holder)
                #expect(leader.token == winner.token)
            }
            #expect(try await stores[0].current(key: key)?.holder == winner.holder)
        }
    }

    @Test func aPausedLeaderFindsItsTermTakenAndDemotes() async throws {
        _ = try await withStores(2) { stores, clocks in
            let key = unique("paused")
            let leaderClock = ManualClock()
            let elector = try LeaderElector(
                store: stores[0],
                key: key,
                holder: "leader",
                configuration: ElectorConfiguration(ttl: Self.ttl),
                clock: leaderClock
            )
            let events = elector.events
            let run = Task { try await elector.run() }
            defer { run.cancel() }
            var iterator = events.makeAsyncIterator()
            var lease: Lease?
            while lease == nil, let event = await iterator.next() {
                if case .elected(let elected) = event { lease = elected }
            }
            let held = try #require(lease)
            // The leader is paused (its clock stands still); the candidate times the unchanged ETag and takes over.
            #expect(
                try await stores[1].acquire(key: key, holder: "candidate", ttl: Self.ttl).lease == nil)
            clocks[1].advance(by: Self.ttl)
            let taken = try #require(
                try await stores[1].acquire(key: key, holder: "candidate", ttl: Self.ttl).lease)
            #expect(taken.token == held.token + 1)
            // The leader wakes up for its renewal, well before its own deadline: the store answers 412, so `lost`.
            await leaderClock.waitForSleepers(atLeast: 1)
            leaderClock.advance(by: ElectorConfiguration(ttl: Self.ttl).effectiveRenewInterval)
            var reason: DemotionReason?
            while reason == nil, let event = await iterator.next() {
                if case .demoted(_, let why) = event { reason = why }
            }
            #expect(reason == .lost)
            #expect(try await stores[1].current(key: key)?.holder == "candidate")
            let error = await #expect(throws: BatonError.self) { try await stores[0].renew(held, ttl: Self.ttl) }
            #expect(error?.code == .lost)
        }
    }

    @Test func aRenewOfATakenTermThrowsLost() async throws {
        _ = try await withStores(2) { stores, clocks in
            let key = unique("lost")
            let held = try #require(
                try await stores[0].acquire(key: key, holder: "a", ttl: Self.ttl).lease)
            _ = try await stores[1].acquire(key: key, holder: "b", ttl: Self.ttl)
            clocks[1].advance(by: Self.ttl)
            _ = try #require(try await stores[1].acquire(key: key, holder: "b", ttl: Self.ttl).lease)
            let error = await #expect(throws: BatonError.self) { try await stores[0].renew(held, ttl: Self.ttl) }
            #expect(error?.code == .lost)
            // A release of the taken term changes nothing.
            try await stores[0].release(held)
            #expect(try await stores[0].current(key: key)?.holder == "b")
        }
    }

    @Test func releaseKeepsTheTokenSoTheNextTermGetsALargerOne() async throws {
        _ = try await withStores(2) { stores, _ in
            let key = unique("release")
            let first = try #require(
                try await stores[0].acquire(key: key, holder: "a", ttl: Self.ttl).lease)
            try await stores[0].release(first)
            #expect(try await stores[1].current(key: key) == nil)
            let second = try #require(
                try await stores[1].acquire(key: key, holder: "b", ttl: Self.ttl).lease)
            #expect(second.token == first.token + 1)
        }
    }

    @Test func wrongCredentialsAreAClearUnauthorizedErrorWithoutTheSecret() async throws {
        guard let (_, key) = try S3TestServer.server() else { return }
        let secret = "not-the-secret-\(unique("s"))"
        let store = try #require(
            try S3TestServer.store(
                credentials: S3Credentials(accessKeyID: key.accessKeyID, secretAccessKey: secret)
            )
        )
        let error = try await withRunning([store]) { stores in
            await #expect(throws: BatonError.self) {
                try await stores[0].acquire(key: unique("auth"), holder: "a", ttl: Self.ttl)
            }
        }
        #expect(error?.code == .unauthorized)
        let text = "\(error.map { String(describing: $0) } ?? "") \(error.map { String(reflecting: $0) } ?? "")"
        #expect(text.contains("SignatureDoesNotMatch"))
        #expect(text.contains(key.accessKeyID))
        #expect(!text.contains(secret))
        #expect(!text.contains(key.secretAccessKey))
    }

    @Test func missingCredentialsAreNamed() {
        #expect {
            _ = try S3LeaseStore("s3://bucket/prefix/?endpoint=http://127.0.0.1:1", environment: [:])
        } throws: { error in
            let error = error as? BatonError
            return error?.code == .unauthorized && error?.message.contains("AWS_ACCESS_KEY_ID") == true
        }
    }

    @Test func badURLsAreInvalidArguments() {
        let environment = ["AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"]
        for url in [
            "s3://bucket/p/?endpoint=ftp://host", "s3://bucket/p/?endpoint=http://", "s3://bucket/p/?colour=blue",
            "redis://127.0.0.1:6379",
        ] {
            #expect(throws: BatonError.self, "\(url)") { try S3LeaseStore(url, environment: environment) }
        }
    }
}
