import Baton

/// A waiting candidate whose connections die silently while the leader crashes, on a real store: the candidate
/// must notice and take the key over within a few ttls, though no `expired` event, watch event or notification
/// reaches it through the connections it had.
///
/// A leader takes the key on `leaderStore` and renews it; an elector campaigns on `waitingStore`, whose
/// connections go through `proxy`, and settles as a follower. Then every connection open through the proxy is
/// blackholed (see ``BlackholeProxy/blackholeOpenConnections()``; connections made later work) and the leader
/// crashes: it stops renewing without releasing. The result is how long after the crash the elector led, or nil
/// if it did not within `limit`.
public enum SilentConnectionScenario {
    /// What happened.
    public struct Outcome: Sendable {
        /// The time from the leader's crash to the waiting candidate's election; nil if it did not lead in time.
        public var takeover: Duration?
        /// How many connections the proxy blackholed.
        public var blackholed: Int
    }

    public static func run(
        leaderStore: LeaseStore,
        waitingStore: LeaseStore,
        proxy: BlackholeProxy,
        ttl: Duration = .seconds(2),
        limit: Duration
    ) async throws -> Outcome {
        let key = Conformance.unique("silent")
        let acquired = try await leaderStore.acquire(key: key, holder: "leader", ttl: ttl, metadata: nil)
        guard case .acquired(let lease) = acquired else {
            throw ConformanceFailure("the leader could not take the key \(key)")
        }
        let renewing = Task {
            var lease = lease
            while !Task.isCancelled {
                try? await Task.sleep(for: ttl / 4)
                if Task.isCancelled { return }
                if let renewed = try? await leaderStore.renew(lease, ttl: ttl) { lease = renewed }
            }
        }
        let elector = try LeaderElector(
            store: waitingStore,
            key: key,
            holder: "waiter",
            configuration: ElectorConfiguration(ttl: ttl)
        )
        let running = Task { try await elector.run() }
        let outcome: Result<Outcome, any Error>
        do {
            outcome = .success(try await crash(renewing, waiting: elector, proxy: proxy, limit: limit))
        } catch {
            outcome = .failure(error)
        }
        renewing.cancel()
        running.cancel()
        _ = await running.result
        return try outcome.get()
    }

    /// Runs both stores and the scenario at `ttl` with a limit of 3 ttl, stops the stores, prints the takeover time, and returns
    /// what went wrong: nil if connections were blackholed and the waiting candidate took over in time.
    public static func check(
        leaderStore: LeaseStore,
        waitingStore: LeaseStore,
        proxy: BlackholeProxy,
        ttl: Duration = .seconds(2)
    ) async throws -> String? {
        let outcome = try await leaderStore.withRunning { leaderStore in
            try await waitingStore.withRunning { waitingStore in
                try await run(
                    leaderStore: leaderStore, waitingStore: waitingStore, proxy: proxy, ttl: ttl, limit: ttl * 3)
            }
        }
        let takeover = outcome.takeover.map { "after \($0)" } ?? "none"
        print("silent connections: \(outcome.blackholed) blackholed; takeover \(takeover)")
        if outcome.blackholed == 0 { return "no connection of the waiting candidate went through the proxy" }
        if outcome.takeover == nil { return "no takeover within \(ttl * 3) of the leader's crash" }
        return nil
    }

    /// Blackholes the waiting candidate's connections once it follows the leader, crashes the leader, and waits
    /// for the candidate to lead.
    private static func crash(
        _ renewing: Task<Void, Never>,
        waiting elector: LeaderElector,
        proxy: BlackholeProxy,
        limit: Duration
    ) async throws -> Outcome {
        let following = try await eventually(timeout: .seconds(10)) {
            if case .follower(let leader) = elector.role { leader?.holder == "leader" } else { false }
        }
        guard following else {
            throw ConformanceFailure("the waiting candidate never followed the leader: \(elector.role)")
        }
        // Let the candidate settle: its feed subscribed, its requests answered, its connections idle.
        try await Task.sleep(for: .milliseconds(500))
        let blackholed = proxy.blackholeOpenConnections()
        try await Task.sleep(for: .milliseconds(200))
        renewing.cancel()
        let crashed = ContinuousClock.now
        let led = try await eventually(timeout: limit) {
            if case .leader = elector.role { true } else { false }
        }
        return Outcome(takeover: led ? ContinuousClock.now - crashed : nil, blackholed: blackholed)
    }
}
