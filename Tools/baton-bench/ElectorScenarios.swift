import ArgumentParser
import Baton
import BatonStores
import Foundation
import Logging

/// Electors in the benchmarks log nothing: thousands of them would drown the results.
let silentLogger = Logger(label: "baton.bench", factory: { _ in SwiftLogNoOpLogHandler() })

/// Runs `electors` until `body` returns, then cancels them (they release what they hold) and waits for them.
func withElectors<T>(
    _ electors: [LeaderElector],
    _ body: () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for elector in electors {
            group.addTask { try await elector.run() }
        }
        do {
            let result = try await body()
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Waits until `condition` holds, checking every `interval`, for at most `timeout`; returns whether it held.
func poll(every interval: Duration, timeout: Duration, _ condition: () -> Bool) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        if clock.now >= deadline { return false }
        try await clock.sleep(for: interval)
    }
    return true
}

/// `baton-bench scale-leases`: one process holding LEASES leases (one elector per key, as an application with
/// that many singletons would), renewing at ttl/3. Once every elector leads, measures over a window the CPU
/// share of the process, its resident memory, the renews sent against the renews expected, and how many
/// electors lost leadership (none should).
struct ScaleLeasesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale-leases",
        abstract: "CPU and memory of one process holding many leases."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "Leases held by the process.") var leases = 10_000
    @Option(help: "Lease ttl in seconds.") var ttl = 10
    @Option(help: "Seconds measured once every elector leads.") var seconds = 30

    func run() async throws {
        let base = try await LeaseStores.open(options.store)
        let running = Task { try await base.run() }
        let store = CountingStore(base)
        // One front for every elector, as an application shares one store.
        let front = LeaseStore(store)
        let configuration = ElectorConfiguration(ttl: .seconds(ttl))
        let run = UInt32.random(in: 0...UInt32.max)
        let electors = try (0..<leases).map { index in
            try LeaderElector(
                store: front,
                key: "bench-scale-\(run)-\(index)",
                holder: "bench-\(run)",
                configuration: configuration,
                logger: silentLogger
            )
        }
        let memoryBefore = residentMemory().current
        let clock = ContinuousClock()
        let window = Duration.seconds(seconds)
        let result = try await withElectors(electors) { () -> [String: Any] in
            let started = clock.now
            let allLead = try await poll(every: .milliseconds(100), timeout: .seconds(max(120, ttl * 6))) {
                electors.allSatisfy { $0.role.lease != nil }
            }
            let electedIn = clock.now - started
            let leadersAtStart = electors.count { $0.role.lease != nil }
            let renewsBefore = store.count(.renew)
            let acquiresBefore = store.count(.acquire)
            let failuresBefore = store.failures
            let cpuBefore = processCPUTime()
            let windowStart = clock.now
            try await clock.sleep(for: window)
            let elapsed = clock.now - windowStart
            let cpu = processCPUTime() - cpuBefore
            let memory = residentMemory()
            let leadersAtEnd = electors.count { $0.role.lease != nil }
            let renews = store.count(.renew) - renewsBefore
            let windowSeconds = elapsed.milliseconds / 1000
            let expected = Double(leases) * windowSeconds / (Double(ttl) / 3)
            return [
                "all_elected": allLead,
                "elected_in_s": (electedIn.milliseconds / 10).rounded() / 100,
                "leaders_at_start": leadersAtStart,
                "leaders_at_end": leadersAtEnd,
                "renews_per_s": Int(Double(renews) / windowSeconds),
                "renews_expected_per_s": Int(expected / windowSeconds),
                "acquires_in_window": store.count(.acquire) - acquiresBefore,
                "store_errors_in_window": store.failures - failuresBefore,
                "store_errors_by_kind": store.failuresByKind,
                "cpu_percent_of_one_core": (cpu.milliseconds / elapsed.milliseconds * 1000).rounded() / 10,
                "rss_mib": Int(memory.current / 1_048_576),
                "rss_growth_mib": Int((memory.current - memoryBefore) / 1_048_576),
                "window_s": Int(windowSeconds.rounded()),
            ]
        }
        running.cancel()
        try await running.value
        emit(
            result.merging([
                "name": options.name ?? "scale-leases",
                "kind": "scale-leases",
                "scenario": "\(leases) leases in one process, ttl \(ttl) s",
                "store": storeName(options.store),
                "leases": leases,
                "ttl_s": ttl,
            ]) { $1 }
        )
    }
}

/// `baton-bench waiters`: WAITERS electors campaigning for one key in one process. RELEASES times, the leader
/// resigns; counts the store requests each release causes (acquire attempts by the waiters: one means a queue,
/// about WAITERS means a thundering herd) and times the next election.
struct WaitersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waiters",
        abstract: "Wake-ups per release with many candidates waiting on one key."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "Candidates campaigning for the key.") var waiters = 1000
    @Option(help: "Releases measured.") var releases = 5
    @Option(help: "Lease ttl in seconds.") var ttl = 10

    func run() async throws {
        let base = try await LeaseStores.open(options.store)
        let running = Task { try await base.run() }
        let store = CountingStore(base)
        let run = UInt32.random(in: 0...UInt32.max)
        let key = "bench-waiters-\(run)"
        let electors = try (0..<waiters).map { index in
            try LeaderElector(
                store: LeaseStore(store),
                key: key,
                holder: "candidate-\(index)",
                configuration: ElectorConfiguration(ttl: .seconds(ttl)),
                logger: silentLogger
            )
        }
        let releases = releases
        let clock = ContinuousClock()
        let result = try await withElectors(electors) { () -> [String: Any] in
            func leader() -> LeaderElector? { electors.first { $0.role.lease != nil } }
            func settled() -> Bool {
                leader() != nil
                    && electors.allSatisfy { elector in
                        switch elector.role {
                        case .leader: true
                        case .follower(let info): info != nil
                        case .detached: false
                        }
                    }
            }
            guard try await poll(every: .milliseconds(20), timeout: .seconds(120), settled) else {
                throw BenchFailure("the \(electors.count) candidates did not settle on one leader within 120 s")
            }
            try await waitUntilQuiet(store)
            var acquires: [Int] = []
            var deliveries: [Int] = []
            var elections = LatencySummary()
            for _ in 0..<releases {
                guard let current = leader() else { throw BenchFailure("no leader before a release") }
                let before = store.snapshot
                let start = clock.now
                current.resign()
                let elected = try await poll(every: .milliseconds(1), timeout: .seconds(ttl * 3)) {
                    guard let next = leader() else { return false }
                    return next !== current
                }
                guard elected else { throw BenchFailure("no new leader within \(ttl * 3) s of a release") }
                elections.record(clock.now - start)
                try await waitUntilQuiet(store)
                let after = store.snapshot
                acquires.append(after["acquire", default: 0] - before["acquire", default: 0])
                deliveries.append(after["changeDelivered", default: 0] - before["changeDelivered", default: 0])
            }
            func median(_ values: [Int]) -> Int { values.sorted()[values.count / 2] }
            return elections.fields.merging([
                "acquires_per_release": median(acquires),
                "feed_deliveries_per_release": median(deliveries),
                "acquires_per_release_all": acquires,
            ]) { $1 }
        }
        running.cancel()
        try await running.value
        emit(
            result.merging([
                "name": options.name ?? "scale-waiters",
                "kind": "waiters",
                "scenario": "\(waiters) candidates waiting on one key: store requests per release",
                "store": storeName(options.store),
                "waiters": waiters,
                "releases": releases,
            ]) { $1 }
        )
    }
}

/// Waits until no store request has been sent for 300 ms (at most 10 s): the aftermath of a change is over.
func waitUntilQuiet(_ store: CountingStore) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + .seconds(10)
    var last = store.requests
    var quietSince = clock.now
    while clock.now < deadline {
        try await clock.sleep(for: .milliseconds(20))
        let now = store.requests
        if now != last {
            last = now
            quietSince = clock.now
        } else if clock.now - quietSince >= .milliseconds(300) {
            return
        }
    }
}

/// `baton-bench store-cost`: store requests per minute at steady state, for a leader and for each waiting
/// candidate, each elector counted through its own counting wrapper over one shared store.
struct StoreCostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-cost",
        abstract: "Store requests per minute by a leader and by waiting candidates at steady state."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "Waiting candidates besides the leader.") var candidates = 3
    @Option(help: "Lease ttl in seconds.") var ttl = 10
    @Option(help: "Seconds measured at steady state.") var seconds = 60

    func run() async throws {
        let base = try await LeaseStores.open(options.store)
        let running = Task { try await base.run() }
        let run = UInt32.random(in: 0...UInt32.max)
        let key = "bench-cost-\(run)"
        let stores = (0...candidates).map { _ in CountingStore(base) }
        let electors = try stores.enumerated().map { index, store in
            try LeaderElector(
                store: LeaseStore(store),
                key: key,
                holder: "candidate-\(index)",
                configuration: ElectorConfiguration(ttl: .seconds(ttl)),
                logger: silentLogger
            )
        }
        let window = Duration.seconds(seconds)
        let clock = ContinuousClock()
        let result = try await withElectors(electors) { () -> [String: Any] in
            guard
                try await poll(
                    every: .milliseconds(20), timeout: .seconds(60),
                    {
                        electors.count { $0.role.lease != nil } == 1
                            && electors.allSatisfy { $0.role.lease != nil || $0.role != .detached }
                    })
            else { throw BenchFailure("no steady state with one leader within 60 s") }
            try await clock.sleep(for: .seconds(1))
            let before = stores.map(\.requests)
            let leaderIndex = electors.firstIndex { $0.role.lease != nil }!
            let start = clock.now
            try await clock.sleep(for: window)
            let minutes = (clock.now - start).milliseconds / 60_000
            guard electors[leaderIndex].role.lease != nil else {
                throw BenchFailure("the leader changed during the measurement")
            }
            let perMinute = zip(stores, before).map { Double($0.requests - $1) / minutes }
            let waiting = perMinute.enumerated().filter { $0.offset != leaderIndex }.map(\.element)
            func round(_ value: Double) -> Double { (value * 10).rounded() / 10 }
            return [
                "leader_requests_per_min": round(perMinute[leaderIndex]),
                "expected_leader_renews_per_min": round(60 / (Double(ttl) / 3)),
                "waiting_requests_per_min": round(waiting.reduce(0, +) / Double(max(1, waiting.count))),
                "window_s": seconds,
            ]
        }
        running.cancel()
        try await running.value
        emit(
            result.merging([
                "name": options.name ?? "store-cost",
                "kind": "store-cost",
                "scenario": "store requests per minute at steady state, ttl \(ttl) s, \(candidates) waiting",
                "store": storeName(options.store),
                "ttl_s": ttl,
                "candidates": candidates,
            ]) { $1 }
        )
    }
}
