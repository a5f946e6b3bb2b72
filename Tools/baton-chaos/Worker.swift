import ArgumentParser
import Baton
import BatonChaos
import BatonStores
import Foundation
import Logging
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension BatonChaosCommand {
    /// A library-based candidate: `LeaderElector.withLeadership` around work that records start/tick/end.
    ///
    /// SIGTERM or SIGINT stops it gracefully: the work records `end`, then the elector releases the key.
    ///
    /// SIGUSR1 is the `resign-busy` fault: the running body turns stubborn — for the milliseconds written in the
    /// `--stubborn-file`, it keeps working (recording ticks) and ignores cancellation — and the worker calls
    /// `resign()`. The elector must not let the next candidate start before the body returned.
    ///
    /// With `--permits N` it is a candidate of a semaphore of N (`SemaphoreElector.withPermit`) instead: the work of
    /// slot S is recorded in `LOG/slot-S/`, so that each slot's records are judged as one key's. SIGUSR1 then cancels
    /// the `withPermit` call while the body is stubborn: the slot must not pass on before the body returned. With
    /// `--shards M` it is a member of a sharded key of M shards (`ShardedElector.withShards`), recorded the same way
    /// per shard.
    struct Worker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Campaign with LeaderElector.withLeadership and record start/tick/end while leading.")

        @Option(
            help: ArgumentHelp(
                "The store URL (sqlite:PATH, postgres://..., redis://..., etcd://..., s3://...).", valueName: "url"))
        var store: String

        @Option(help: ArgumentHelp("The key to lead.", valueName: "key"))
        var key: String

        @Option(help: ArgumentHelp("This candidate's identity.", valueName: "id"))
        var id: String

        @Option(help: ArgumentHelp("The lease time to live: 1s, 500ms.", valueName: "time"))
        var ttl: String = "1s"

        @Option(help: ArgumentHelp("The directory of the work logs.", valueName: "dir"))
        var log: String

        @Option(help: ArgumentHelp("Milliseconds between ticks.", valueName: "ms"))
        var tick: Int = 50

        @Option(help: ArgumentHelp("Campaign as a candidate of a semaphore of this many permits.", valueName: "n"))
        var permits: Int?

        @Option(help: ArgumentHelp("Take part as a member of a sharded key of this many shards.", valueName: "m"))
        var shards: Int?

        @Option(
            name: .customLong("stubborn-file"),
            help: ArgumentHelp(
                "On SIGUSR1, the body ignores cancellation for the milliseconds this file holds, and the worker "
                    + "resigns.", valueName: "file"))
        var stubbornFile: String?

        func run() async throws {
            let ttl: Duration
            do {
                ttl = try parseBatonDuration(self.ttl)
            } catch {
                throw ValidationError("--ttl: \(error.message)")
            }
            let store = try await LeaseStores.open(try StoreURL(self.store))
            var logger = Logger(label: "baton-chaos.worker")
            logger.logLevel = .critical
            if let permits {
                let semaphore = try SemaphoreElector(
                    store: store, key: key, holder: id, permits: permits, configuration: ElectorConfiguration(ttl: ttl),
                    logger: logger)
                return try await runSemaphore(semaphore, store: store)
            }
            if let shards {
                let member = try ShardedElector(
                    store: store, key: key, holder: id, shards: shards, configuration: ElectorConfiguration(ttl: ttl),
                    logger: logger)
                return try await runShards(member, store: store)
            }
            let elector = try LeaderElector(
                store: store, key: key, holder: id, configuration: ElectorConfiguration(ttl: ttl), logger: logger)
            let log = try WorkLog(directory: log, holder: id, campaigner: getpid())
            let stopping = StopFlag()
            let stubborn = StubbornWindow()
            let tick = Duration.milliseconds(self.tick)
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sigusr1)
            try await store.withRunning { _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while !stopping.isSet && !Task.isCancelled {
                            do {
                                try await elector.withLeadership { lease in
                                    guard !stopping.isSet else { return }
                                    log.append(.start, token: lease.token)
                                    // Cancellation at demotion is checked before every record, except while the body
                                    // is stubborn (the resign-busy fault), when it keeps working regardless.
                                    func done() -> Bool { Task.isCancelled && !stubborn.isOpen }
                                    while !done() && !stopping.isSet {
                                        if stubborn.isOpen {
                                            // A sleep in a task of its own is not cut short by this task's cancellation.
                                            await Task { try? await Task.sleep(for: tick) }.value
                                        } else {
                                            try? await Task.sleep(for: tick)
                                        }
                                        if done() { break }
                                        log.append(.tick, token: lease.token)
                                    }
                                    log.append(.end, token: lease.token)
                                }
                            } catch {
                                // Leadership lost while working, or the campaign was cancelled: campaign again.
                            }
                        }
                    }
                    for await signal in signals {
                        if signal == .sigusr1 {
                            let text = stubbornFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
                            let milliseconds = text.flatMap {
                                Int64($0.trimmingCharacters(in: .whitespacesAndNewlines))
                            }
                            stubborn.open(for: milliseconds ?? 0)
                            elector.resign()
                            continue
                        }
                        stopping.set()
                        break
                    }
                    // Let a running term record its end and release; then cancel a campaign that still waits.
                    try await Task.sleep(for: tick * 4)
                    group.cancelAll()
                    try await group.waitForAll()
                }
            }
        }
    }
}

extension BatonChaosCommand.Worker {
    /// The semaphore candidate: takes a permit again and again, recording the work of each slot in its own
    /// directory, until SIGTERM or SIGINT; SIGUSR1 cancels the current `withPermit` with a stubborn body.
    func runSemaphore(_ semaphore: SemaphoreElector, store: LeaseStore) async throws {
        try await runSlots(semaphore.permits, store: store) { work in
            _ = try? await semaphore.withPermit { permit in await work(permit.slot, permit.token) }
        }
    }

    /// The member of a sharded key: takes part again and again, recording the work of each shard it owns in the
    /// shard's own directory (`LOG/slot-S/`, judged as one key's), until SIGTERM or SIGINT; SIGUSR1 cancels the
    /// current `withShards` with stubborn bodies.
    func runShards(_ member: ShardedElector, store: LeaseStore) async throws {
        try await runSlots(member.shards, store: store) { work in
            try? await member.withShards { shard in await work(shard.index, shard.token) }
        }
    }

    /// Runs `takePart` again and again until SIGTERM or SIGINT: it calls the work it is given for each slot (or
    /// shard) it holds, with the term's token, and the work records start, ticks and end in `LOG/slot-S/` until
    /// cancelled. SIGUSR1 makes the work stubborn for a while and cancels the current `takePart`.
    private func runSlots(
        _ count: Int,
        store: LeaseStore,
        takePart: @escaping @Sendable (_ work: @escaping @Sendable (Int, FencingToken) async -> Void) async -> Void
    ) async throws {
        let logs = try (0..<count).map { slot in
            let directory = "\(log)/slot-\(slot)"
            mkdir(directory, 0o755)
            return try WorkLog(directory: directory, holder: id, campaigner: getpid())
        }
        let stopping = StopFlag()
        let stubborn = StubbornWindow()
        let tick = Duration.milliseconds(self.tick)
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sigusr1)
        let current = CurrentRound()
        let work: @Sendable (Int, FencingToken) async -> Void = { slot, token in
            guard !stopping.isSet else { return }
            let log = logs[slot]
            log.append(.start, token: token)
            func done() -> Bool { Task.isCancelled && !stubborn.isOpen }
            while !done() && !stopping.isSet {
                if stubborn.isOpen {
                    await Task { try? await Task.sleep(for: tick) }.value
                } else {
                    try? await Task.sleep(for: tick)
                }
                if done() { break }
                log.append(.tick, token: token)
            }
            log.append(.end, token: token)
        }
        try await store.withRunning { _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !stopping.isSet && !Task.isCancelled {
                        // Lost while working, or cancelled (the resign-busy fault): take part again.
                        let round = Task<Void, Never> { await takePart(work) }
                        current.task.withLock { $0 = round }
                        await withTaskCancellationHandler {
                            await round.value
                        } onCancel: {
                            round.cancel()
                        }
                    }
                }
                for await signal in signals {
                    if signal == .sigusr1 {
                        let text = stubbornFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
                        let milliseconds = text.flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                        stubborn.open(for: milliseconds ?? 0)
                        current.task.withLock { $0 }?.cancel()
                        continue
                    }
                    stopping.set()
                    break
                }
                // Let running work record its end and release; then cancel a wait.
                try await Task.sleep(for: tick * 4)
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }
}

/// The semaphore worker's `withPermit` call under way (cancelled by the resign-busy fault).
private final class CurrentRound: Sendable {
    let task = Mutex<Task<Void, Never>?>(nil)
}

/// Set once SIGTERM or SIGINT arrived.
private final class StopFlag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// Until when a leading body ignores cancellation (the resign-busy fault), on the monotonic clock.
private final class StubbornWindow: Sendable {
    private let until = Atomic<Int64>(0)
    var isOpen: Bool { ChaosRecord.now() < until.load(ordering: .relaxed) }
    func open(for milliseconds: Int64) { until.store(ChaosRecord.now() + milliseconds * 1_000_000, ordering: .relaxed) }
}
