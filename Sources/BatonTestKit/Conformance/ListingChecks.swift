import Baton

extension LeaseStoreConformance {
    static let listingChecks: [ConformanceCheck] = [
        leaseListing,
        leaseListingLimit,
        roundListing,
        listingValidation,
    ]

    static let leaseListing = ConformanceCheck(
        "listing: only the live leases under a prefix, sorted, with holder, token and metadata"
    ) { harness in
        let store = try await harness.makeStore()
        let long = Conformance.longTTL(harness)
        let base = Conformance.unique("list")
        let prefix = base + "/"
        var expected: [String: Lease] = [:]
        for (suffix, holder, metadata) in [
            ("b", "holder-b", nil), ("a", "holder-a", "http://10.0.0.1:8080"), ("sub/c", "holder-c", "nested"),
            ("é", "holder-e", "{\"x\": 1}"), ("g[ab]/k", "holder-g", nil), ("ga/k", "holder-ga", nil),
        ] {
            let key = prefix + suffix
            let lease = try Conformance.acquired(
                await store.acquire(key: key, holder: holder, ttl: long, metadata: metadata), "acquire of \(key)")
            expected[key] = lease
        }
        // Look-alikes that must not be listed: the prefix without its slash, and a key sharing its start.
        var others: [Lease] = []
        for key in [base, base + "x/a", base + "-a"] {
            others.append(
                try Conformance.acquired(
                    await store.acquire(key: key, holder: "look-alike", ttl: long), "acquire of \(key)"))
        }
        let released = try Conformance.acquired(
            await store.acquire(key: prefix + "released", holder: "holder-r", ttl: long), "acquire to release")
        try await store.release(released)
        _ = try Conformance.acquired(
            await store.acquire(key: prefix + "expires", holder: "holder-x", ttl: harness.ttl), "short acquire")
        try await harness.elapse(harness.ttl * 2)

        let listing = try await store.leases(prefix: prefix)
        let keys = listing.leases.map(\.key)
        let wanted = ["a", "b", "g[ab]/k", "ga/k", "sub/c", "é"].map { prefix + $0 }
        try expect(
            keys == wanted,
            "leases(prefix: \(prefix)) listed \(keys), expected \(wanted): the live leases under the prefix, sorted "
                + "by key bytes, without the released, the expired and look-alike keys"
        )
        try expect(!listing.isTruncated, "a listing of 6 leases under the default limit says it is truncated")
        for held in listing.leases {
            guard let lease = expected[held.key] else { continue }
            let leader = held.leader
            try expect(
                leader.holder == lease.holder && leader.token == lease.token && leader.metadata == lease.metadata,
                "leases(prefix:) shows \(held.key) as \(Conformance.show(leader)), expected \(lease.holder) token "
                    + "\(lease.token) metadata \(lease.metadata ?? "nil")"
            )
            if let remaining = leader.remaining {
                try expect(
                    remaining > .zero && remaining <= long,
                    "leases(prefix:) shows \(remaining) left for \(held.key), expected (0, \(long)]"
                )
            }
        }
        let shorter = try await store.leases(prefix: base)
        let shorterWanted = [base, base + "-a"] + wanted + [base + "x/a"]
        try expect(
            shorter.leases.map(\.key) == shorterWanted,
            "leases(prefix: \(base)) listed \(shorter.leases.map(\.key)), expected \(shorterWanted)"
        )
        for (narrowPrefix, narrowWanted) in [
            (prefix + "s", [prefix + "sub/c"]), (prefix + "g[ab]/", [prefix + "g[ab]/k"]), (prefix + "*", []),
            (prefix + "?", []), (prefix + "g[", [prefix + "g[ab]/k"]),
        ] {
            let narrow = try await store.leases(prefix: narrowPrefix)
            try expect(
                narrow.leases.map(\.key) == narrowWanted,
                "leases(prefix: \(narrowPrefix)) listed \(narrow.leases.map(\.key)), expected \(narrowWanted) "
                    + "(characters of glob patterns match only themselves)"
            )
        }
        let first = try await store.leases(prefix: "", limit: 1)
        try expect(
            first.leases.count == 1 && first.isTruncated,
            "leases(prefix: \"\", limit: 1) with at least 9 leases held listed \(first.leases.count), truncated "
                + "\(first.isTruncated); expected 1, truncated"
        )
        for lease in Array(expected.values) + others { try await store.release(lease) }
        let after = try await store.leases(prefix: prefix)
        try expect(after.leases.isEmpty, "leases(prefix:) after every release listed \(after.leases.map(\.key))")
    }

    static let leaseListingLimit = ConformanceCheck(
        "listing: a limit keeps the first leases by key and says the listing is cut short"
    ) { harness in
        let store = try await harness.makeStore()
        let long = Conformance.longTTL(harness)
        let prefix = Conformance.unique("list-limit") + "/"
        var leases: [Lease] = []
        for suffix in ["k3", "k1", "k2"] {
            leases.append(
                try Conformance.acquired(
                    await store.acquire(key: prefix + suffix, holder: "holder", ttl: long), "acquire of \(suffix)"))
        }
        let two = try await store.leases(prefix: prefix, limit: 2)
        try expect(
            two.leases.map(\.key) == [prefix + "k1", prefix + "k2"] && two.isTruncated,
            "leases(prefix:limit: 2) listed \(two.leases.map(\.key)) truncated \(two.isTruncated), expected the "
                + "first two keys, truncated"
        )
        let three = try await store.leases(prefix: prefix, limit: 3)
        try expect(
            three.leases.count == 3 && !three.isTruncated,
            "leases(prefix:limit: 3) of 3 leases listed \(three.leases.count) truncated \(three.isTruncated)"
        )
        for lease in leases { try await store.release(lease) }
    }

    static let roundListing = ConformanceCheck(
        "listing: the kept rounds of a system, newest name first, with winner and completion"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("list-rounds")
        let empty = try await store.rounds(system: system)
        try expect(empty.rounds.isEmpty, "rounds(system:) of a new system listed \(empty.rounds)")
        _ = try await store.claim(system: system, round: "2026-01-01", candidate: "host-a", retention: .seconds(600))
        try await store.complete(
            system: system, round: "2026-01-01", by: .candidate("host-a"), retention: .seconds(600))
        _ = try await store.claim(system: system, round: "2026-01-02", candidate: "host-b", retention: .seconds(600))
        _ = try await store.claim(system: system, round: "2026-01-02", candidate: "host-c", retention: .seconds(600))
        // A completion without a claim (gone's anonymous rule), under a name with the layouts' separators.
        try await store.complete(
            system: system, round: "2025-12-31:winner/x", by: .anonymous("10.0.0.7:5000"), retention: .seconds(600))
        _ = try await store.claim(system: system, round: "2026-01-03", candidate: "host-d", retention: harness.ttl)
        // Look-alike systems whose rounds must not be listed.
        for other in [system + "x", system + ":2026-01-01", String(system.dropLast())] {
            _ = try await store.claim(system: other, round: "2026-01-09", candidate: "other", retention: .seconds(600))
        }
        try await harness.elapse(harness.ttl * 2)

        let listing = try await store.rounds(system: system)
        let expected = [
            RoundSummary(round: "2026-01-02", winner: "host-b", completedBy: nil),
            RoundSummary(round: "2026-01-01", winner: "host-a", completedBy: "host-a"),
            RoundSummary(round: "2025-12-31:winner/x", winner: nil, completedBy: "10.0.0.7:5000"),
        ]
        try expect(
            listing.rounds == expected && !listing.isTruncated,
            "rounds(system:) listed \(listing.rounds) truncated \(listing.isTruncated), expected \(expected): the "
                + "kept rounds newest first, without the expired one and other systems' rounds"
        )
        let one = try await store.rounds(system: system, limit: 1)
        try expect(
            one.rounds == Array(expected.prefix(1)) && one.isTruncated,
            "rounds(system:limit: 1) listed \(one.rounds) truncated \(one.isTruncated), expected the newest, truncated"
        )
    }

    static let listingValidation = ConformanceCheck(
        "listing: bad prefixes, systems and limits are invalidArgument before any I/O"
    ) { harness in
        let store = try await harness.makeStore()
        try await Conformance.expectError(.invalidArgument, "a prefix with a control character") {
            try await store.leases(prefix: "jobs/\u{7}")
        }
        try await Conformance.expectError(.invalidArgument, "a prefix of 257 bytes") {
            try await store.leases(prefix: String(repeating: "p", count: 257))
        }
        try await Conformance.expectError(.invalidArgument, "a lease limit of 0") {
            try await store.leases(prefix: "", limit: 0)
        }
        try await Conformance.expectError(.invalidArgument, "a lease limit above the maximum") {
            try await store.leases(prefix: "", limit: ListingLimits.maxLeases + 1)
        }
        try await Conformance.expectError(.invalidArgument, "an empty system") {
            try await store.rounds(system: "")
        }
        try await Conformance.expectError(.invalidArgument, "a round limit above the maximum") {
            try await store.rounds(system: "system", limit: ListingLimits.maxRounds + 1)
        }
        let longest = try await store.leases(prefix: String(repeating: "p", count: 256) + "", limit: 1)
        try expect(longest.leases.isEmpty, "a 256-byte prefix no key has listed \(longest.leases)")
    }
}
