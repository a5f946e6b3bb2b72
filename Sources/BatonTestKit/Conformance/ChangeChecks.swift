import Baton

extension LeaseStoreConformance {
    static let changeChecks: [ConformanceCheck] = [
        changesStartWithCurrentLeader,
        changesDeliverEveryKindOfChange,
        observeDeliversEveryKindOfChange,
        observeStopsWhenCancelled,
    ]

    static let changesStartWithCurrentLeader = ConformanceCheck(
        "changes: the first observation is the current leader, or nil for a free key"
    ) { harness in
        let store = try await harness.makeStore()
        let ttl = Conformance.longTTL(harness)
        let key = Conformance.unique("changes-first")
        let lease = try Conformance.acquired(
            try await store.acquire(key: key, holder: "holder-a", ttl: ttl, metadata: "first"),
            "the first acquire"
        )
        let held = ChangeObserver(try store.changes(key: key))
        defer { held.stop() }
        let first = try await held.expectNext(harness, "the current leader")
        try expect(
            first?.holder == "holder-a" && first?.token == lease.token && first?.metadata == "first",
            "the first observation of a held key is \(Conformance.show(first)), expected \(lease)"
        )
        let free = ChangeObserver(try store.changes(key: Conformance.unique("changes-free")))
        defer { free.stop() }
        let none = try await free.expectNext(harness, "nil for a key no one holds")
        try expect(none == nil, "the first observation of a free key is \(Conformance.show(none)), expected nil")
        try await store.release(lease)
    }

    static let changesDeliverEveryKindOfChange = ConformanceCheck(
        "changes: delivers a new term, new metadata, a release, a takeover and an expiry, in order"
    ) { harness in
        try await deliversEveryKindOfChange(harness) { store, key in ChangeObserver(try store.changes(key: key)) }
    }

    static let observeDeliversEveryKindOfChange = ConformanceCheck(
        "observe: the push form delivers a new term, new metadata, a release, a takeover and an expiry, in order"
    ) { harness in
        try await deliversEveryKindOfChange(harness) { store, key in try ChangeObserver(observing: store, key: key) }
    }

    static let observeStopsWhenCancelled = ConformanceCheck(
        "observe: a cancelled observation hands on nothing more, while a new one sees the change"
    ) { harness in
        let store = try await harness.makeStore()
        let ttl = Conformance.longTTL(harness)
        let key = Conformance.unique("observe-cancel")
        let cancelled = try ChangeObserver(observing: store, key: key)
        let initial = try await cancelled.expectNext(harness, "nil for a key no one holds")
        try expect(initial == nil, "the first observation of a free key is \(Conformance.show(initial))")
        cancelled.stop()
        let lease = try Conformance.acquired(
            try await store.acquire(key: key, holder: "holder-a", ttl: ttl, metadata: nil),
            "the acquire after the cancel"
        )
        let fresh = try ChangeObserver(observing: store, key: key)
        defer { fresh.stop() }
        let seen = try await fresh.expectNext(harness, "the leader holder-a")
        try expect(seen?.token == lease.token, "a new observation first saw \(Conformance.show(seen))")
        try await store.release(lease)
        let released = try await fresh.expectNext(harness, "nil after the release")
        try expect(released == nil, "after a release the new observation saw \(Conformance.show(released))")
        try expect(
            // Nothing was being delivered when it was cancelled (the key had not changed since its first
            // observation), so nothing may come after.
            cancelled.deliveredAfterStop == 0 && cancelled.pending == 0,
            "a cancelled observation went on: \(cancelled.deliveredAfterStop) observations after cancel()"
        )
    }

    /// Follows a key with `follow` through a new term, new metadata, a release, a takeover and an expiry.
    private static func deliversEveryKindOfChange(
        _ harness: any StoreHarness,
        follow: (LeaseStore, String) throws -> ChangeObserver
    ) async throws {
        let store = try await harness.makeStore()
        let ttl = Conformance.longTTL(harness)
        let key = Conformance.unique("changes")
        let observer = try follow(store, key)
        defer { observer.stop() }
        let initial = try await observer.expectNext(harness, "nil for a key no one holds")
        try expect(initial == nil, "the first observation of a free key is \(Conformance.show(initial))")

        var lease = try Conformance.acquired(
            try await store.acquire(key: key, holder: "holder-a", ttl: ttl, metadata: "one"),
            "the first acquire"
        )
        let acquired = try await observer.expectNext(harness, "the new leader holder-a")
        try expect(
            acquired?.holder == "holder-a" && acquired?.token == lease.token && acquired?.metadata == "one",
            "after an acquire changes delivered \(Conformance.show(acquired)), expected \(lease)"
        )

        lease.metadata = "two"
        lease = try await store.renew(lease, ttl: ttl)
        let republished = try await observer.expectNext(harness, "holder-a with new metadata")
        try expect(
            republished?.holder == "holder-a" && republished?.token == lease.token && republished?.metadata == "two",
            "after a renew with new metadata changes delivered \(Conformance.show(republished)), expected \"two\""
        )

        try await store.release(lease)
        let released = try await observer.expectNext(harness, "nil after the release")
        try expect(released == nil, "after a release changes delivered \(Conformance.show(released)), expected nil")

        let takeover = try Conformance.acquired(
            try await store.acquire(key: key, holder: "holder-b", ttl: harness.ttl, metadata: nil),
            "acquire by another holder after the release"
        )
        let next = try await observer.expectNext(harness, "the new leader holder-b")
        try expect(
            next?.holder == "holder-b" && next?.token == takeover.token,
            "after a takeover changes delivered \(Conformance.show(next)), expected \(takeover)"
        )
        try expect(
            takeover.token > lease.token,
            "the takeover's token \(takeover.token) is not above \(lease.token)"
        )

        try await harness.elapse(harness.ttl * 2)
        let expired = try await observer.expectNext(harness, "nil after holder-b's term expired")
        try expect(expired == nil, "after an expiry changes delivered \(Conformance.show(expired)), expected nil")
    }
}
