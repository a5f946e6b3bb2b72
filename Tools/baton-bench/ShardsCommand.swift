import ArgumentParser
import Baton
import BatonStores
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `baton-bench shards`: rebalancing of a sharded key as members come and go. Members are `baton run --shards M`
/// processes (the `baton` beside this tool) whose command sleeps; this process reads the shards' owners every 20 ms
/// (one listing). Each round goes 4 members → 5 (a join) → 4 (a graceful leave: SIGTERM) → 3 (a crash: SIGKILL) and
/// times each change from the signal (or the start) to an even spread (every shard owned by a live member, each
/// member ⌊M/n⌋ or ⌈M/n⌉), counting the owner changes seen on the way against the fewest an even spread needed.
struct ShardsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shards",
        abstract: "Time from a member's join, leave or crash to an even spread of a sharded key, and the moves."
    )

    @OptionGroup var options: StoreOptions
    @Option(help: "The shards.") var shards = 12
    @Option(help: "Rounds of 4 → 5 → 4 → 3 members.") var rounds = 3
    @Option(help: "Lease ttl in seconds.") var ttl = 2

    /// One change measured.
    struct Change {
        var kind: String
        var seconds: Double
        var moves: Int
        var fewest: Int
    }

    func run() async throws {
        let baton = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("baton").path
        guard FileManager.default.isExecutableFile(atPath: baton) else {
            throw BenchFailure("no baton beside baton-bench at \(baton)")
        }
        let store = try await LeaseStores.open(options.store)
        let running = Task { try await store.run() }
        defer { running.cancel() }
        var changes: [Change] = []
        for round in 0..<rounds {
            let key = "bench-shards-\(UInt32.random(in: 0...UInt32.max))"
            let layout = try ShardLayout(key: key, shards: shards)
            var members: [String: Process] = [:]
            defer { for process in members.values where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            func start(_ name: String) throws {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: baton)
                process.arguments = [
                    "run", "--store", options.store, "--key", key, "--shards", String(shards), "--id", name,
                    "--ttl", "\(ttl)s", "--retry", "--quiet", "--", "sleep", "100000",
                ]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                members[name] = process
            }
            for index in 0..<4 { try start("m\(round)-\(index)") }
            var owners = try await waitForEvenSpread(
                layout, store: store, members: Set(members.keys), from: [String?](repeating: nil, count: shards),
                since: .now
            ).owners

            // A join.
            let joinStart = ContinuousClock.now
            try start("m\(round)-4")
            var change = try await waitForEvenSpread(
                layout, store: store, members: Set(members.keys), from: owners, since: joinStart)
            changes.append(Change(kind: "join", seconds: change.seconds, moves: change.moves, fewest: change.fewest))
            owners = change.owners

            // A graceful leave.
            let leaving = "m\(round)-1"
            let leaveStart = ContinuousClock.now
            kill(members[leaving]!.processIdentifier, SIGTERM)
            members[leaving]?.waitUntilExit()
            members[leaving] = nil
            change = try await waitForEvenSpread(
                layout, store: store, members: Set(members.keys), from: owners, since: leaveStart)
            changes.append(Change(kind: "leave", seconds: change.seconds, moves: change.moves, fewest: change.fewest))
            owners = change.owners

            // A crash: its command is killed with it (the keeper sees baton's end).
            let crashing = "m\(round)-2"
            let crashStart = ContinuousClock.now
            kill(members[crashing]!.processIdentifier, SIGKILL)
            members[crashing]?.waitUntilExit()
            members[crashing] = nil
            change = try await waitForEvenSpread(
                layout, store: store, members: Set(members.keys), from: owners, since: crashStart)
            changes.append(Change(kind: "crash", seconds: change.seconds, moves: change.moves, fewest: change.fewest))

            for process in members.values {
                kill(process.processIdentifier, SIGTERM)
                process.waitUntilExit()
            }
            members = [:]
        }
        var result: [String: Any] = [
            "name": options.name ?? "shards",
            "kind": "shards",
            "scenario": "\(shards) shards, members 4 → 5 (join) → 4 (graceful leave) → 3 (crash), `baton run "
                + "--shards` processes: time to an even spread, and the shards moved",
            "store": storeName(options.store),
            "shards": shards,
            "rounds": rounds,
            "ttl_s": ttl,
        ]
        for kind in ["join", "leave", "crash"] {
            let measured = changes.filter { $0.kind == kind }
            let seconds = measured.map(\.seconds).sorted()
            result["\(kind)_median_s"] = (seconds[seconds.count / 2] * 1000).rounded() / 1000
            result["\(kind)_max_s"] = ((seconds.last ?? 0) * 1000).rounded() / 1000
            result["\(kind)_moves"] = measured.map(\.moves)
            result["\(kind)_fewest"] = measured.map(\.fewest)
            result["\(kind)_moves_ratio_max"] =
                measured.map { $0.fewest == 0 ? 1 : Double($0.moves) / Double($0.fewest) }.max() ?? 0
        }
        emit(result)
    }

    /// What an even spread was reached with.
    struct Spread {
        var owners: [String?]
        var seconds: Double
        var moves: Int
        var fewest: Int
    }

    /// Reads the owners every 20 ms until every shard is owned by one of `members` and the spread is even; counts each
    /// shard's changes of owner from `from` (a shard going free and back to its owner is no move).
    func waitForEvenSpread(
        _ layout: ShardLayout, store: LeaseStore, members: Set<String>, from: [String?],
        since start: ContinuousClock.Instant
    ) async throws -> Spread {
        let fewest = Self.fewestMoves(from: from, members: members, shards: shards)
        var last = from
        var moves = 0
        let timeout = Duration.seconds(ttl * 10)
        while ContinuousClock.now - start < timeout {
            let owners = try await layout.owners(on: store).map { $0?.holder }
            for (shard, owner) in owners.enumerated() {
                guard let owner else { continue }
                if let before = last[shard], before != owner { moves += 1 }
                last[shard] = owner
            }
            var counts = Dictionary(uniqueKeysWithValues: members.map { ($0, 0) })
            for owner in owners { if let owner { counts[owner, default: 0] += 1 } }
            if owners.allSatisfy({ $0.map(members.contains) ?? false }), let low = counts.values.min(),
                let high = counts.values.max(), high - low <= 1
            {
                let seconds = Double((ContinuousClock.now - start).batonMilliseconds) / 1000
                return Spread(owners: owners, seconds: seconds, moves: moves, fewest: fewest)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchFailure("no even spread over \(members.sorted()) within \(timeout): owners \(last)")
    }

    /// The fewest owner changes that take `owners` to an even spread over `members`: every shard of no member moves,
    /// and each member above its share gives up the rest (the ⌈M/n⌉ shares going to those owning the most).
    static func fewestMoves(from owners: [String?], members: Set<String>, shards: Int) -> Int {
        var counts = Dictionary(uniqueKeysWithValues: members.map { ($0, 0) })
        // Shards of members gone must move; a shard free before (the first spread) is no move.
        var departed = 0
        for case let owner? in owners {
            if members.contains(owner) { counts[owner, default: 0] += 1 } else { departed += 1 }
        }
        let (base, extra) = shards.quotientAndRemainder(dividingBy: members.count)
        let ranked = counts.values.sorted(by: >)
        let excess = ranked.enumerated().map { rank, count in max(0, count - base - (rank < extra ? 1 : 0)) }
        return excess.reduce(0, +) + departed
    }
}
