import Baton
import BatonTestKit
import Foundation
import Synchronization
import Testing

@testable import BatonSQLite

/// A fresh database file in a directory of its own, removed after `body`.
func withDatabase<T>(_ body: (String) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("baton-sqlite-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory.appendingPathComponent("baton.db").path)
}

/// Two stores on one fresh file, standing for two processes; both running while `body` runs.
func withTwoStores<T: Sendable>(
    configuration: SQLiteLeaseStore.Configuration = .init(),
    _ body: @Sendable (LeaseStore, LeaseStore) async throws -> T
) async throws -> T {
    try await withDatabase { path throws in
        let first = LeaseStore(try SQLiteLeaseStore(path: path, configuration: configuration))
        let second = LeaseStore(try SQLiteLeaseStore(path: path, configuration: configuration))
        return try await first.withRunning { first in
            try await second.withRunning { second in try await body(first, second) }
        }
    }
}

/// Two stores on one fresh file whose expiry follows `clock`, both running while `body` runs.
func withTwoStores<T: Sendable>(
    clock: ManualClock,
    _ body: @Sendable (LeaseStore, LeaseStore) async throws -> T
) async throws -> T {
    try await withDatabase { path throws in
        let expiry = ManualExpiryClock(manual: clock)
        let first = LeaseStore(try SQLiteLeaseStore(path: path, clock: expiry))
        let second = LeaseStore(try SQLiteLeaseStore(path: path, clock: expiry))
        return try await first.withRunning { first in
            try await second.withRunning { second in try await body(first, second) }
        }
    }
}

/// One store on a fresh file, running while `body` runs.
func withStore<T: Sendable>(
    configuration: SQLiteLeaseStore.Configuration = .init(),
    _ body: @Sendable (LeaseStore) async throws -> T
) async throws -> T {
    try await withDatabase { path throws in
        try await LeaseStore(try SQLiteLeaseStore(path: path, configuration: configuration)).withRunning(body)
    }
}

/// The code of the `BatonError` that `body` throws, or nil if it throws something else or nothing.
func batonErrorCode(_ body: () async throws -> Void) async -> BatonError.Code? {
    do {
        try await body()
        return nil
    } catch let error as BatonError {
        return error.code
    } catch {
        return nil
    }
}

/// A value behind a lock that closures of several tasks can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }

    var value: Value { mutex.withLock { $0 } }
}

extension LeaseStore {
    /// The SQLite driver under this front, for checks of its internals.
    var sqlite: SQLiteLeaseStore { driver as! SQLiteLeaseStore }
}

/// An expiry clock driven by hand: `BatonTestKit`'s `ManualClock`, under a fixed epoch. Store instances sharing
/// one file and one of these agree on expiry, as processes sharing the host clock do.
struct ManualExpiryClock: SQLiteExpiryClock {
    let manual: ManualClock
    var epochName: String? = "manual"

    var now: ManualClock.Instant { manual.now }
    var minimumResolution: Duration { manual.minimumResolution }

    func sleep(until deadline: ManualClock.Instant, tolerance: Duration? = nil) async throws {
        try await manual.sleep(until: deadline, tolerance: tolerance)
    }

    func epoch() -> String? { epochName }

    func nanoseconds(at instant: ManualClock.Instant) -> Int64 {
        let (seconds, attoseconds) = instant.offset.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// The descriptors of this process open on `path` or its `-wal`, `-shm` and `-notify` files.
func openDescriptors(of path: String) -> [String] {
    let names = [path, path + "-wal", path + "-shm", path + "-notify"]
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return entries.filter { entry in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)")
        else { return false }
        return names.contains(target)
    }
}
