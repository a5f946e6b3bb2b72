import Baton

/// Quorum mode end to end on a real store: two electors with `quorum: 2`, one leads; when the other leaves,
/// the leader steps down with ``DemotionReason/quorumLost`` and releases the key; when a second member
/// heartbeats again, it leads again.
///
/// Give it two stores on the same backend standing for two processes (they may be the same instance). It
/// waits for each step at most `timeout` of real time and throws a ``ConformanceFailure`` naming the step that
/// did not happen.
public enum QuorumScenario {
    public static func run(
        first: LeaseStore,
        second: LeaseStore,
        ttl: Duration = .seconds(1),
        timeout: Duration = .seconds(20)
    ) async throws {
        let key = Conformance.unique("quorum")
        let group = key + "-members"
        let configuration = ElectorConfiguration(ttl: ttl, quorum: 2, presenceGroup: group)
        let electors = [
            try LeaderElector(store: first, key: key, holder: "a", configuration: configuration),
            try LeaderElector(store: second, key: key, holder: "b", configuration: configuration),
        ]
        let events = electors.map { ElectorEventLog($0.events) }
        let runs = electors.map { elector in Task { try await elector.run() } }
        defer {
            for run in runs { run.cancel() }
            for log in events { log.stop() }
        }

        guard
            let leaderIndex = try await firstIndex(
                of: events, within: timeout, where: { if case .elected = $0 { true } else { false } })
        else { throw ConformanceFailure("no elector was elected with both members alive within \(timeout)") }
        let followerIndex = 1 - leaderIndex
        // The follower stops: it leaves the presence group, so the leader counts one member.
        runs[followerIndex].cancel()
        let demoted = try await events[leaderIndex].wait(within: timeout) {
            if case .demoted = $0 { true } else { false }
        }
        guard case .demoted(_, let reason) = demoted else {
            throw ConformanceFailure("the leader did not step down within \(timeout) after the other member left")
        }
        try expect(reason == .quorumLost, "the leader stepped down with \(reason), expected quorum_lost")
        // The demoted leader gives the key back (its release runs right after the demotion). On a store with a
        // queue the release may hand the key to the head of the queue: the follower that stopped, whose place
        // lasts until its ttl runs out. Its elector has stopped and never leads, and the key is free once that
        // term runs out; nobody else ever holds it.
        let leaderName = leaderIndex == 0 ? "a" : "b"
        let followerName = followerIndex == 0 ? "a" : "b"
        let deadline = ContinuousClock.now + timeout
        var leader = try await first.current(key: key)
        while let current = leader, ContinuousClock.now < deadline {
            try expect(
                current.holder == leaderName || (first.queuesWaiters && current.holder == followerName),
                "\(current.holder) took the key without a quorum")
            try await Task.sleep(for: .milliseconds(20))
            leader = try await first.current(key: key)
        }
        try expect(leader == nil, "the key was not free within \(timeout) of the leader losing its quorum")
        let stoppedLed = events[followerIndex].events.filter { if case .elected = $0 { true } else { false } }
        try expect(stoppedLed.isEmpty, "the stopped elector led")

        // A second member comes back: the remaining elector campaigns and leads again.
        try await (followerIndex == 0 ? first : second).heartbeat(
            group: group,
            member: followerIndex == 0 ? "a" : "b",
            ttl: timeout * 2
        )
        let elected = try await events[leaderIndex].wait(within: timeout) {
            if case .elected = $0 { true } else { false }
        }
        try expect(elected != nil, "the elector did not lead again within \(timeout) after a quorum came back")
    }

    private static func firstIndex(
        of logs: [ElectorEventLog],
        within timeout: Duration,
        where matches: @escaping @Sendable (ElectorEvent) -> Bool
    ) async throws -> Int? {
        try await withThrowingTaskGroup(of: Int?.self) { group in
            for (index, log) in logs.enumerated() {
                group.addTask { try await log.wait(within: timeout, until: matches) != nil ? index : nil }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            return nil
        }
    }
}
