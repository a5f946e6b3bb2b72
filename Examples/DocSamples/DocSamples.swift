import Baton
import BatonSQLite
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

// The Swift samples of README.md and Sources/Baton/Baton.docc, compiled. BatonDocsTests checks that every ```swift
// block of those files appears here line for line (its `import` lines among the imports above, its other lines
// together, indented as one), so a sample that stops compiling fails the build, and one edited in the text
// without being edited here fails the tests.

/// README.md, "Library"; GettingStarted.md, "Lead a key": the whole `main.swift` of a first app.
func firstApp() async throws {
    let store = LeaseStore(try SQLiteLeaseStore(path: "baton.db"))
    let holder = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : LeaderElector.defaultHolder
    let elector = try LeaderElector(store: store, key: "jobs/cleaner", holder: holder)
    try await store.withRunning { _ in
        try await elector.withLeadership { lease in
            print("\(holder) leads jobs/cleaner with fencing token \(lease.token)")
            try await Task.sleep(for: .seconds(10))
        }
    }
}

/// GettingStarted.md, "Run it as a service".
func runAsService(store: LeaseStore, elector: LeaderElector, app: some Service, logger: Logger) async throws {
    let group = ServiceGroup(
        configuration: .init(
            services: [store, elector, app],
            gracefulShutdownSignals: [.sigterm],
            logger: logger
        )
    )
    try await group.run()
}

/// GettingStarted.md, "Elect once per schedule".
func claimOnce(store: LeaseStore) async throws {
    let election = try RoundElection(store: store, system: "nightly-cleaner")
    if try await election.claim(round: "2026-11-23", candidate: hostName) == .won {
        try await cleanUp()
        try await election.complete(round: "2026-11-23", candidate: hostName)
    }
}

/// RunningWorkOncePerSchedule.md, "Rounds".
func claimAndReport(store: LeaseStore, logger: Logger) async throws {
    let election = try RoundElection(store: store, system: "nightly-cleaner")
    switch try await election.claim(round: "2026-11-23", candidate: hostName) {
    case .won:
        try await cleanUp()
        try await election.complete(round: "2026-11-23", candidate: hostName)
    case .lost(let winner):
        logger.info("\(winner) runs tonight's clean-up")
    }
}

/// Semaphores.md, "Overview".
func renderWithAPermit(store: LeaseStore) async throws {
    let semaphore = try SemaphoreElector(store: store, key: "renderers", holder: hostName, permits: 3)
    try await store.withRunning { _ in
        try await semaphore.withPermit { permit in
            // At most 3 holders run this at once. Hand the slot and its token to what the work writes.
            try await render(slot: permit.slot, fencingToken: permit.token)
        }
    }
}

/// ShardedLeadership.md, "Overview": a leader per shard.
func consumeOwnedPartitions(store: LeaseStore) async throws {
    let orders = try ShardedElector(store: store, key: "orders", holder: hostName, shards: 12)
    try await store.withRunning { _ in
        try await orders.withShards { shard in
            // Runs for each partition this member owns, cancelled when the partition moves to another member.
            try await consume(partition: shard.index, fencingToken: shard.token)
        }
    }
}

/// What the samples take for granted.
let hostName = ProcessInfo.processInfo.hostName

/// The work of the round samples.
func cleanUp() async throws {}

func render(slot: Int, fencingToken: FencingToken) async throws {}

func consume(partition: Int, fencingToken: FencingToken) async throws {}

/// Configuration: quorum mode.
func quorumConfiguration() -> ElectorConfiguration {
    let configuration = ElectorConfiguration(ttl: .seconds(10), quorum: 2, presenceGroup: "orders-members")
    return configuration
}

/// GuaranteesAndLimits.md, "The deadline is handed to the work": long work checks the time left in its term.
func workInBatches(elector: LeaderElector, batches: [[String]]) async throws {
    try await elector.withLeadership { lease in
        for batch in batches {
            guard let left = elector.timeLeft, left > .seconds(2) else { break }  // no time for another batch
            try await process(batch, fencingToken: lease.token)
        }
    }
}

/// Writes one batch of work to a resource that refuses tokens older than the newest it has seen.
func process(_ batch: [String], fencingToken: FencingToken) async throws {}
