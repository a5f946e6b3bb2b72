import Baton

extension LeaseStoreConformance {
    static let replicaChecks: [ConformanceCheck] = [
        termBelongsToTheStore,
        renewThroughAnotherInstanceExtends,
        refusedAcquireLeavesNoTrace,
        waiterThatStopsLeavesTheQueue,
        waitersTakeTheKeyInArrivalOrder,
        aCandidateThatLeavesTheQueueIsPassedOver,
        aWaiterAskingAtTheStoresIntervalKeepsItsPlace,
    ]

    static let termBelongsToTheStore = ConformanceCheck(
        "replicas: a term acquired through one instance is observed, renewed, re-acquired and released through another"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        let key = Conformance.unique("replica")
        let ttl = Conformance.longTTL(harness)
        var lease = try Conformance.acquired(
            try await first.acquire(key: key, holder: "holder-a", ttl: ttl, metadata: "first"),
            "the acquire through the first instance"
        )
        let seen = try await second.current(key: key)
        try expect(
            seen?.holder == "holder-a" && seen?.token == lease.token,
            "current(key:) through the second instance is \(Conformance.show(seen)), expected \(lease)"
        )
        let observer = ChangeObserver(try second.changes(key: key))
        defer { observer.stop() }
        let observed = try await observer.expectNext(harness, "the term acquired through the first instance")
        try expect(
            observed?.holder == "holder-a" && observed?.token == lease.token,
            "changes(key:) through the second instance first saw \(Conformance.show(observed)), expected \(lease)"
        )

        lease.metadata = "second"
        let renewed = try await second.renew(lease, ttl: ttl)
        try expect(renewed.token == lease.token, "a renew through the second instance changed the token")
        var current = try await first.current(key: key)
        try expect(
            current?.token == lease.token && current?.metadata == "second",
            "after a renew through the second instance with new metadata, current(key:) through the first is "
                + "\(Conformance.show(current))"
        )
        // Another ttl through one instance, then the old one through the other: neither may lose the term.
        lease.metadata = "third"
        _ = try await second.renew(lease, ttl: ttl + .seconds(60))
        lease.metadata = "fourth"
        _ = try await first.renew(lease, ttl: ttl)

        let again = try Conformance.acquired(
            try await second.acquire(key: key, holder: "holder-a", ttl: ttl, metadata: "again"),
            "the holder acquiring its live term again through the second instance"
        )
        try expect(
            again.token == lease.token,
            "the holder acquiring again through the second instance got token \(again.token), not its term's "
                + "\(lease.token): it queued behind itself or started a new term"
        )
        let leader = try Conformance.held(
            try await first.acquire(key: key, holder: "holder-b", ttl: ttl, metadata: nil),
            "another holder's acquire through the first instance"
        )
        try expect(
            leader.holder == "holder-a" && leader.token == lease.token && leader.metadata == "again",
            "another holder was refused naming \(Conformance.show(leader))"
        )

        try await second.release(again)
        current = try await first.current(key: key)
        try expect(
            current == nil,
            "after a release through the second instance, current(key:) through the first is \(Conformance.show(current))"
        )
        while let next = try await observer.expectNext(harness, "the release through the second instance") {
            try expect(next.token == lease.token, "changes(key:) saw \(Conformance.show(next)) before the release")
        }
        let next = try Conformance.acquired(
            try await first.acquire(key: key, holder: "holder-b", ttl: ttl, metadata: nil),
            "another holder's acquire through the first instance after the release"
        )
        try expect(next.token > lease.token, "the next term's token \(next.token) is not above \(lease.token)")
        try await Conformance.expectError(.lost, "a renew of the released term through the first instance") {
            try await first.renew(lease, ttl: ttl)
        }
        try await first.release(next)
    }

    static let renewThroughAnotherInstanceExtends = ConformanceCheck(
        "replicas: a renew through another instance keeps the lease past its original ttl"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        // As in the check of renew on one instance: an attempt that a slow machine made inconclusive (the renewed
        // ttl passed before the checks were answered) is made again, at most three times.
        for attempt in 1...3 {
            let key = Conformance.unique("replica-renew")
            // Both instances have answered once (their connections are open) before the short term starts.
            _ = try await second.current(key: key)
            let acquireSent = ContinuousClock.now
            let lease = try Conformance.acquired(
                try await first.acquire(key: key, holder: "holder-a", ttl: harness.ttl, metadata: nil),
                "the short term through the first instance"
            )
            try await harness.elapse(harness.ttl / 2)
            let renewSent = ContinuousClock.now
            let renewed: Lease
            do {
                renewed = try await second.renew(lease, ttl: harness.ttl)
            } catch let error as BatonError
                where error.code == .lost && ContinuousClock.now - acquireSent >= harness.ttl
            {
                // The original ttl passed before the renew was answered: inconclusive on a slow machine.
                if attempt < 3 { continue }
                throw error
            }
            try expect(renewed.token == lease.token, "a renew through the second instance changed the token")
            try await harness.elapse(harness.ttl * 0.6)
            let current = try await first.current(key: key)
            let other = try await first.acquire(key: key, holder: "holder-b", ttl: harness.ttl, metadata: nil)
            if ContinuousClock.now - renewSent >= harness.ttl, attempt < 3 {
                if let taken = other.lease { try await first.release(taken) }
                continue
            }
            try expect(
                current?.holder == "holder-a" && current?.token == lease.token,
                "1.1 ttl after acquiring through one instance and 0.6 ttl after renewing through another, "
                    + "current(key:) is \(Conformance.show(current)); the renewal did not keep the lease alive"
            )
            _ = try Conformance.held(
                other, "acquire by another holder within the ttl renewed through the other instance")
            try await first.release(renewed)
            return
        }
    }

    static let refusedAcquireLeavesNoTrace = ConformanceCheck(
        "replicas: a refused acquire that does not wait leaves no trace; after the release the next holder wins at once"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        let key = Conformance.unique("no-trace")
        let ttl = Conformance.longTTL(harness)
        let lease = try Conformance.acquired(
            try await first.acquire(key: key, holder: "leader", ttl: ttl, metadata: nil),
            "the leader's acquire"
        )
        for (name, store) in [("second", second), ("first", first)] {
            let leader = try Conformance.held(
                try await store.acquire(key: key, holder: "asker", ttl: ttl, metadata: nil),
                "an acquire that does not wait, through the \(name) instance, while the key is held"
            )
            try expect(leader.token == lease.token, "the asker was refused naming \(Conformance.show(leader))")
        }
        try await first.release(lease)
        for (name, store) in [("first", first), ("second", second)] {
            let current = try await store.current(key: key)
            try expect(
                current == nil,
                "after the leader's release current(key:) through the \(name) instance is "
                    + "\(Conformance.show(current)): the refused asker was left in the store"
            )
        }
        let next = try Conformance.acquired(
            try await second.acquire(key: key, holder: "next", ttl: ttl, metadata: nil),
            "a third holder's acquire right after the release (the refused asker must not be ahead of it)"
        )
        try expect(next.token > lease.token, "the next term's token \(next.token) is not above \(lease.token)")
        let current = try await first.current(key: key)
        try expect(
            current?.holder == "next" && current?.token == next.token,
            "after the third holder's acquire current(key:) is \(Conformance.show(current))"
        )
        try await second.release(next)
    }

    static let waiterThatStopsLeavesTheQueue = ConformanceCheck(
        "replicas: a waiting candidate that stops asking leaves the queue within about a ttl"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        let key = Conformance.unique("waiter-leaves")
        let lease = try Conformance.acquired(
            try await first.acquire(key: key, holder: "leader", ttl: Conformance.longTTL(harness), metadata: nil),
            "the leader's acquire"
        )
        // The waiter asks as an elector or a long poll does (again at the store's ask interval), through both
        // instances, then goes away.
        let interval = first.queueAskInterval(ttl: harness.ttl) ?? harness.ttl / 3
        for store in [second, first, second] {
            _ = try Conformance.held(
                try await store.acquire(key: key, holder: "waiter", ttl: harness.ttl, metadata: nil, waiting: true),
                "a waiting acquire while the key is held"
            )
            try await harness.elapse(interval)
        }
        // Generous: the store may count the ttl from the last ask in whole seconds, and expire on its own schedule.
        try await harness.elapse(harness.ttl * 3)
        try await first.release(lease)
        let current = try await second.current(key: key)
        try expect(
            current == nil,
            "3 ttl after the waiter's last ask and right after the leader's release, current(key:) is "
                + "\(Conformance.show(current))"
        )
        let next = try Conformance.acquired(
            try await first.acquire(key: key, holder: "next", ttl: Conformance.longTTL(harness), metadata: nil),
            "another holder's acquire after the release, 3 ttl after the waiter stopped asking"
        )
        try expect(next.token > lease.token, "the next term's token \(next.token) is not above \(lease.token)")
        try await first.release(next)
    }

    static let waitersTakeTheKeyInArrivalOrder = ConformanceCheck(
        "replicas: on a store with a queue, waiting candidates take a released key in the order they asked"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        let key = Conformance.unique("queue-order")
        let ttl = Conformance.longTTL(harness)
        var lease = try Conformance.acquired(
            try await first.acquire(key: key, holder: "leader", ttl: ttl, metadata: nil), "the leader's acquire")
        // Three candidates ask in this order, through either instance.
        let candidates = [("w1", second), ("w2", first), ("w3", second)]
        for (holder, store) in candidates {
            _ = try Conformance.held(
                try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: holder, waiting: true),
                "\(holder)'s waiting acquire while the key is held")
        }
        try await first.release(lease)
        guard first.queuesWaiters else {
            // Without a queue a released key is free for whoever asks first.
            let current = try await second.current(key: key)
            try expect(current == nil, "right after the release current(key:) is \(Conformance.show(current))")
            return
        }
        var previous = "leader"
        for (index, (holder, store)) in candidates.enumerated() {
            // Those behind are refused, told who is ahead of them. An instance that answers from its watch (etcd)
            // may not have seen a release made through the other one a moment ago: it may name the leader that
            // just released, for as long as the watch takes to deliver (asked again until then, for up to 2 s).
            for (later, laterStore) in candidates[(index + 1)...] {
                var ahead = try Conformance.held(
                    try await laterStore.acquire(key: key, holder: later, ttl: ttl, metadata: later, waiting: true),
                    "\(later)'s waiting acquire while \(holder) is ahead of it")
                for _ in 0..<100 where ahead.holder == previous {
                    try await harness.elapse(.milliseconds(20))
                    ahead = try Conformance.held(
                        try await laterStore.acquire(
                            key: key, holder: later, ttl: ttl, metadata: later, waiting: true),
                        "\(later)'s waiting acquire while \(holder) is ahead of it")
                }
                try expect(ahead.holder == holder, "\(later) was told \(ahead.holder) leads, not \(holder)")
            }
            previous = holder
            let next = try Conformance.acquired(
                try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: holder, waiting: true),
                "\(holder)'s acquire in its turn")
            try expect(next.token > lease.token, "\(holder)'s token \(next.token) is not above \(lease.token)")
            try expect(next.metadata == holder, "\(holder)'s term has metadata \(String(describing: next.metadata))")
            try await (index == 1 ? second : first).release(next)
            lease = next
        }
        let current = try await first.current(key: key)
        try expect(current == nil, "after the queue's last release current(key:) is \(Conformance.show(current))")
    }

    static let aCandidateThatLeavesTheQueueIsPassedOver = ConformanceCheck(
        "replicas: on a store with a queue, a candidate that left the queue is passed over by the next release"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        let key = Conformance.unique("queue-leave")
        let ttl = Conformance.longTTL(harness)
        let lease = try Conformance.acquired(
            try await first.acquire(key: key, holder: "leader", ttl: ttl, metadata: nil), "the leader's acquire")
        for (holder, store) in [("gone", second), ("stays", first)] {
            _ = try Conformance.held(
                try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: holder, waiting: true),
                "\(holder)'s waiting acquire while the key is held")
        }
        // Through the instance it asked on (an etcd store knows its own candidates), and a second time: a no-op.
        try await second.leaveQueue(key: key, holder: "gone")
        try await second.leaveQueue(key: key, holder: "gone")
        // A holder without a place, and a key without a queue: no-ops.
        try await first.leaveQueue(key: key, holder: "never-asked")
        try await first.leaveQueue(key: Conformance.unique("queue-leave-none"), holder: "gone")
        try await first.release(lease)
        guard first.queuesWaiters else { return }
        let current = try await first.current(key: key)
        try expect(
            current == nil || current?.holder == "stays",
            "after the release the key went to \(Conformance.show(current)), not to the candidate still waiting")
        let next = try Conformance.acquired(
            try await first.acquire(key: key, holder: "stays", ttl: ttl, metadata: "stays", waiting: true),
            "the remaining candidate's acquire after the release")
        try expect(next.token > lease.token, "its token \(next.token) is not above \(lease.token)")
        try await first.release(next)
        let after = try await second.current(key: key)
        try expect(
            after == nil,
            "after the last release current(key:) is \(Conformance.show(after)): the candidate that left got the key")
    }

    static let aWaiterAskingAtTheStoresIntervalKeepsItsPlace = ConformanceCheck(
        "replicas: on a store with a queue, a waiter asking at the store's ask interval keeps its place"
    ) { harness in
        let first = try await harness.makeStore()
        let second = try await harness.makeOtherInstance()
        guard let interval = first.queueAskInterval(ttl: harness.ttl) else { return }
        let key = Conformance.unique("queue-keeps")
        let lease = try Conformance.acquired(
            try await first.acquire(key: key, holder: "leader", ttl: Conformance.longTTL(harness), metadata: nil),
            "the leader's acquire")
        // Asks spread over three intervals, the last one an interval before the release: every place must have
        // outlived the interval since the ask before (one and a half ttl on most stores, for an ask per ttl).
        for store in [second, first, second] {
            _ = try Conformance.held(
                try await store.acquire(key: key, holder: "waiter", ttl: harness.ttl, metadata: "w", waiting: true),
                "the waiter's ask")
            try await harness.elapse(interval)
        }
        _ = try Conformance.held(
            try await second.acquire(key: key, holder: "late", ttl: harness.ttl, metadata: nil, waiting: true),
            "a later candidate's ask")
        try await first.release(lease)
        let next = try await first.current(key: key)
        try expect(
            next?.holder == "waiter",
            "an interval (\(interval)) after its last ask the waiter had no place: the key went to "
                + "\(Conformance.show(next))")
        if let next, next.holder == "waiter" {
            try await first.release(Lease(key: key, holder: "waiter", token: next.token, ttl: harness.ttl))
        }
        try await first.leaveQueue(key: key, holder: "late")
        try await second.leaveQueue(key: key, holder: "late")
    }
}
