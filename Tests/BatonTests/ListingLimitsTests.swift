import Baton
import Testing

@Suite("Listings: order and prefix ranges")
struct ListingLimitsTests {
    @Test("the upper bound of a prefix raises its last code point")
    func upperBound() {
        #expect(ListingLimits.upperBound(ofPrefix: "") == nil)
        #expect(ListingLimits.upperBound(ofPrefix: "jobs/") == "jobs0")
        #expect(ListingLimits.upperBound(ofPrefix: "a\u{10FFFF}") == "b")
        #expect(ListingLimits.upperBound(ofPrefix: "\u{10FFFF}") == nil)
        #expect(ListingLimits.upperBound(ofPrefix: "x\u{D7FF}") == "x\u{E000}")
        #expect(ListingLimits.upperBound(ofPrefix: "é") == "ê")
    }

    @Test("a key is in [prefix, upper bound) exactly when it starts with the prefix")
    func rangeIsExact() {
        let alphabet: [Unicode.Scalar] = ["a", "b", "/", "é", "\u{301}", "\u{D7FF}", "\u{E000}", "\u{10FFFF}", "z"]
        var generator = SystemRandomNumberGenerator()
        func random(_ length: Int) -> String {
            var view = String.UnicodeScalarView()
            for _ in 0..<length { view.append(alphabet.randomElement(using: &generator)!) }
            return String(view)
        }
        for _ in 0..<2000 {
            let prefix = random(Int.random(in: 0...3))
            let key = Bool.random() ? prefix + random(Int.random(in: 0...3)) : random(Int.random(in: 1...5))
            let upper = ListingLimits.upperBound(ofPrefix: prefix)
            let inRange =
                !ListingLimits.precedes(key, prefix) && (upper.map { ListingLimits.precedes(key, $0) } ?? true)
            #expect(
                inRange == ListingLimits.key(key, hasPrefix: prefix),
                "key \(key.debugDescription) prefix \(prefix.debugDescription)")
        }
    }

    @Test("listings sort by the bytes of UTF-8, not by Unicode's canonical order")
    func order() {
        #expect(ListingLimits.precedes("Z", "a"))
        #expect(ListingLimits.precedes("e\u{301}", "é"))
        #expect(!ListingLimits.precedes("é", "e\u{301}"))
        #expect(ListingLimits.precedes("a", "a/"))
    }

    @Test("the front lists in key order, cut at the limit, and checks its arguments")
    func front() async throws {
        let store = LeaseStore.memory()
        for key in ["k/3", "k/1", "k/2", "k0", "j/1"] {
            _ = try await store.acquire(key: key, holder: "h-\(key)", ttl: .seconds(60), metadata: key)
        }
        let two = try await store.leases(prefix: "k/", limit: 2)
        #expect(two.leases.map(\.key) == ["k/1", "k/2"])
        #expect(two.isTruncated)
        #expect(two.leases.first?.leader.metadata == "k/1")
        let all = try await store.leases()
        #expect(all.leases.map(\.key) == ["j/1", "k/1", "k/2", "k/3", "k0"])
        #expect(!all.isTruncated)
        await #expect(throws: BatonError.self) { try await store.leases(prefix: "\n") }
        await #expect(throws: BatonError.self) { try await store.rounds(system: "s", limit: 0) }
    }
}
