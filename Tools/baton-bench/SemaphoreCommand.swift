import ArgumentParser
import Baton
import BatonStores
import Foundation
import Synchronization

/// `baton-bench semaphore`: CANDIDATES candidates of a semaphore of PERMITS in one process, each taking a permit
/// again and again. RELEASES times, one holder returns from its work; times the release to the start of the
/// next holder's work in the freed slot (the waiter that takes it), and counts the store's acquire requests.
struct SemaphoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "semaphore",
        abstract: "Time from a semaphore holder's release to a waiter's work in the freed slot."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "The semaphore's permits.") var permits = 3
    @Option(help: "Candidates (more than the permits: the others wait).") var candidates = 8
    @Option(help: "Releases measured.") var releases = 30
    @Option(help: "Lease ttl in seconds.") var ttl = 10

    /// What the holders are doing: who works in which slot, and since when; which holder is told to return.
    final class Board: Sendable {
        struct State {
            var working: [Int: (slot: Int, since: ContinuousClock.Instant)] = [:]
            var released: Set<Int> = []
            var closed = false
            var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        }

        let state = Mutex(State())

        /// Candidate `index` works in `slot` until told to return.
        func work(_ index: Int, slot: Int) async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let released = state.withLock { state in
                    if state.closed { return true }
                    state.working[index] = (slot, .now)
                    if state.released.remove(index) != nil { return true }
                    state.waiters[index] = continuation
                    return false
                }
                if released { continuation.resume() }
            }
            state.withLock { _ = $0.working.removeValue(forKey: index) }
        }

        /// Tells candidate `index` to return from its work.
        func release(_ index: Int) {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if let waiter = state.waiters.removeValue(forKey: index) { return waiter }
                state.released.insert(index)
                return nil
            }
            waiter?.resume()
        }

        /// Releases everyone, now and from now on.
        func close() {
            let waiters = state.withLock { state in
                state.closed = true
                defer { state.waiters = [:] }
                return Array(state.waiters.values)
            }
            for waiter in waiters { waiter.resume() }
        }

        var working: [Int: (slot: Int, since: ContinuousClock.Instant)] { state.withLock { $0.working } }

        var isClosed: Bool { state.withLock { $0.closed } }
    }

    func run() async throws {
        guard candidates > permits else { throw ValidationError("--candidates must be above --permits") }
        let permits = permits
        let releases = releases
        let ttl = ttl
        let base = try await LeaseStores.open(options.store)
        let running = Task { try await base.run() }
        let store = CountingStore(base)
        let key = "bench-semaphore-\(UInt32.random(in: 0...UInt32.max))"
        let configuration = ElectorConfiguration(ttl: .seconds(ttl))
        let semaphores = try (0..<candidates).map { index in
            try SemaphoreElector(
                store: LeaseStore(store), key: key, holder: "candidate-\(index)", permits: permits,
                configuration: configuration, logger: silentLogger)
        }
        let board = Board()
        let clock = ContinuousClock()
        let result = try await withThrowingTaskGroup(of: Void.self) { group -> [String: Any] in
            for (index, semaphore) in semaphores.enumerated() {
                group.addTask {
                    while !board.isClosed {
                        try? await semaphore.withPermit { permit in await board.work(index, slot: permit.slot) }
                    }
                }
            }
            defer {
                board.close()
                group.cancelAll()
            }
            var latencies = LatencySummary()
            var acquires: [Int] = []
            for _ in 0..<releases {
                // Every slot busy, the others waiting in the slots' queues.
                guard
                    try await poll(
                        every: .milliseconds(5), timeout: .seconds(ttl * 3), { board.working.count == permits })
                else { throw BenchFailure("the \(permits) slots were not all in use within \(ttl * 3) s") }
                try await waitUntilQuiet(store)
                let working = board.working
                guard let (holder, held) = working.min(by: { $0.value.since < $1.value.since }) else { continue }
                let before = store.snapshot
                let start = clock.now
                board.release(holder)
                var next: (Int, ContinuousClock.Instant)?
                let taken = try await poll(every: .microseconds(200), timeout: .seconds(ttl * 3)) {
                    next = board.working.first {
                        $0.key != holder && $0.value.slot == held.slot && $0.value.since > start
                    }
                    .map { ($0.key, $0.value.since) }
                    return next != nil
                }
                guard taken, let (_, since) = next else {
                    throw BenchFailure("slot \(held.slot) was not taken within \(ttl * 3) s of its release")
                }
                latencies.record(since - start)
                try await waitUntilQuiet(store)
                acquires.append(store.snapshot["acquire", default: 0] - before["acquire", default: 0])
            }
            return latencies.fields.merging([
                "acquires_per_release": acquires.sorted()[acquires.count / 2],
                "acquires_per_release_all": acquires,
            ]) { $1 }
        }
        running.cancel()
        try await running.value
        emit(
            result.merging([
                "name": options.name ?? "semaphore",
                "kind": "semaphore",
                "scenario": "semaphore of \(permits), \(candidates) candidates in one process: a release to the "
                    + "next holder's work in the freed slot",
                "store": storeName(options.store),
                "permits": permits,
                "candidates": candidates,
                "releases": releases,
            ]) { $1 }
        )
    }
}
