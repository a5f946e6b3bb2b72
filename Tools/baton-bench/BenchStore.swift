import Baton
import BatonStores
import Synchronization

/// A benchmark that could not measure what it set out to (the figures would be meaningless).
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The short store name used in the results (`sqlite`, `postgres`, `redis`, ...).
func storeName(_ string: String) -> String {
    guard let url = try? StoreURL(string), let kind = try? LeaseStores.kind(for: url.scheme) else { return "?" }
    return kind.urlSchemes[0]
}

/// Counts the operations sent through it, by operation, and the change-feed values delivered.
final class CountingStore: LeaseStoreDriver {
    /// The base store's name.
    var storeName: String { base.storeName }
    /// False: the base store is run by its owner, and shared.
    var needsRun: Bool { false }
    /// The base store's: counting adds no wait of its own.
    var honoursRequestAbort: Bool { base.honoursRequestAbort }
    var requestExecutor: (any TaskExecutor)? { base.requestExecutor }
    var queuesWaiters: Bool { base.queuesWaiters }
    var queueAsksPerTTL: Int { base.queueAsksPerTTL }

    enum Operation: Int, CaseIterable {
        case acquire, renew, release, leaveQueue, current, changesSubscribed, changeDelivered
        case claim, winner, complete, completion, heartbeat, leave, members

        var label: String { "\(self)" }
    }

    let base: any LeaseStoreDriver
    private let counts = Mutex([Int](repeating: 0, count: Operation.allCases.count))
    private let failureCount = Atomic<Int>(0)
    private let failureKinds = Mutex<[String: Int]>([:])

    /// Counts what is sent to the driver of `base`, which its owner runs.
    init(_ base: LeaseStore) {
        self.base = base.driver
    }

    func count(_ operation: Operation) -> Int { counts.withLock { $0[operation.rawValue] } }

    /// Every count, by operation name.
    var snapshot: [String: Int] {
        Dictionary(uniqueKeysWithValues: Operation.allCases.map { ($0.label, count($0)) })
    }

    /// Store requests: every operation except the feed's subscriptions and deliveries.
    var requests: Int {
        Operation.allCases.filter { $0 != .changesSubscribed && $0 != .changeDelivered }.reduce(0) { $0 + count($1) }
    }

    /// Operations that threw.
    var failures: Int { failureCount.load(ordering: .relaxed) }

    /// Operations that threw, by operation and error code.
    var failuresByKind: [String: Int] { failureKinds.withLock { $0 } }

    private func tally(_ operation: Operation) { counts.withLock { $0[operation.rawValue] += 1 } }

    /// Counts `operation` and, if it throws, a failure.
    private func counted<T>(_ operation: Operation, _ body: () async throws -> T) async throws -> T {
        tally(operation)
        do {
            return try await body()
        } catch {
            failureCount.add(1, ordering: .relaxed)
            let kind = "\(operation.label) \((error as? BatonError)?.code.description ?? "\(type(of: error))")"
            failureKinds.withLock { $0[kind, default: 0] += 1 }
            throw error
        }
    }

    func acquire(key: String, holder: String, ttl: Duration, metadata: String?) async throws -> AcquireResult {
        try await counted(.acquire) { try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata) }
    }

    func acquire(key: String, holder: String, ttl: Duration, metadata: String?, waiting: Bool) async throws
        -> AcquireResult
    {
        try await counted(.acquire) {
            try await base.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata, waiting: waiting)
        }
    }

    func renew(_ lease: Lease, ttl: Duration) async throws -> Lease {
        try await counted(.renew) { try await base.renew(lease, ttl: ttl) }
    }

    func leaveQueue(key: String, holder: String) async throws {
        try await counted(.leaveQueue) { try await base.leaveQueue(key: key, holder: holder) }
    }

    func release(_ lease: Lease) async throws {
        try await counted(.release) { try await base.release(lease) }
    }

    func current(key: String) async throws -> LeaderInfo? {
        try await counted(.current) { try await base.current(key: key) }
    }

    func changes(key: String) throws -> LeaderChanges {
        try LeaderChanges.observing { observer in try observe(key: key, observer) }
    }

    func observe(key: String, _ observer: @escaping LeaderObserver) throws -> ChangeObservation {
        tally(.changesSubscribed)
        return try base.observe(key: key) { [weak self] observation in
            if case .leader = observation { self?.tally(.changeDelivered) }
            observer(observation)
        }
    }

    func claim(system: String, round: String, candidate: String, retention: Duration) async throws -> ClaimResult {
        try await counted(.claim) {
            try await base.claim(system: system, round: round, candidate: candidate, retention: retention)
        }
    }

    func winner(system: String, round: String) async throws -> String? {
        try await counted(.winner) { try await base.winner(system: system, round: round) }
    }

    func complete(system: String, round: String, by completer: Completer, retention: Duration) async throws {
        try await counted(.complete) {
            try await base.complete(system: system, round: round, by: completer, retention: retention)
        }
    }

    func completion(system: String, round: String) async throws -> String? {
        try await counted(.completion) { try await base.completion(system: system, round: round) }
    }

    func heartbeat(group: String, member: String, ttl: Duration) async throws {
        try await counted(.heartbeat) { try await base.heartbeat(group: group, member: member, ttl: ttl) }
    }

    func leave(group: String, member: String) async throws {
        try await counted(.leave) { try await base.leave(group: group, member: member) }
    }

    func members(group: String) async throws -> [String] {
        try await counted(.members) { try await base.members(group: group) }
    }

    /// Runs nothing: the base store is shared and run by its owner.
    func run() async throws {}
}
