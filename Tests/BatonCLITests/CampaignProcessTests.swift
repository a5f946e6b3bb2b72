import Foundation
import Synchronization
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#endif

/// A `baton` process whose standard output is read line by line as it runs.
final class RunningBaton: Sendable {
    private final class Output: Sendable {
        let lines = Mutex<[String]>([])
        let partial = Mutex<Data>(Data())
    }

    let process: Process
    private let output = Output()

    init(_ arguments: [String]) throws {
        process = Process()
        process.executableURL = try CommandLineTests.executable()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["BATON_STORE"] = nil
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let collected = self.output
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            let complete: [String] = collected.partial.withLock { buffer in
                buffer.append(data)
                var found: [String] = []
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    found.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer.removeSubrange(buffer.startIndex...newline)
                }
                return found
            }
            collected.lines.withLock { $0.append(contentsOf: complete) }
        }
        try ChildProcess.forkLock.withLock { _ in try process.run() }
    }

    /// The JSON events printed so far.
    var events: [[String: Any]] {
        output.lines.withLock { $0 }.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    /// Waits (at most `seconds` of real time) for an event named `name`, and returns it.
    func waitFor(_ name: String, seconds: Double = 20, sourceLocation: SourceLocation = #_sourceLocation) async
        -> [String: Any]?
    {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let event = events.first(where: { $0["event"] as? String == name }) { return event }
            try? await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("no \(name) event within \(seconds) s; got \(events)", sourceLocation: sourceLocation)
        return nil
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    func waitForExit(seconds: Double = 20) async -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if !process.isRunning { return process.terminationStatus }
            try? await Task.sleep(for: .milliseconds(5))
        }
        process.terminate()
        return nil
    }
}

/// Real processes campaigning on one SQLite file: the embedded store shared across processes.
@Suite("baton campaign: processes on one SQLite file")
struct CampaignProcessTests {
    func withDatabase(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-campaign-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body("sqlite:" + directory.appendingPathComponent("baton.db").path)
    }

    @Test func gracefulStopHandsOverToTheWaitingProcessAtOnce() async throws {
        try await withDatabase { store in
            let a = try RunningBaton(["campaign", "job", "--store", store, "--id", "a", "--ttl", "30s"])
            let elected = await a.waitFor("elected")
            let b = try RunningBaton(["campaign", "job", "--store", store, "--id", "b", "--ttl", "30s"])
            _ = await b.waitFor("following")
            a.signal(SIGTERM)
            #expect(await a.waitForExit() == 0)
            // With a 30 s ttl, b can only have been elected this soon because a released the key and b was woken.
            let successor = await b.waitFor("elected", seconds: 10)
            let tokenA = try #require(elected?["token"] as? Int)
            let tokenB = try #require(successor?["token"] as? Int)
            #expect(tokenB > tokenA)
            b.signal(SIGTERM)
            #expect(await b.waitForExit() == 0)
        }
    }

    @Test func aKilledLeaderIsSucceededAfterItsTtlWithALargerToken() async throws {
        try await withDatabase { store in
            let a = try RunningBaton(["campaign", "job", "--store", store, "--id", "a", "--ttl", "1s"])
            let elected = await a.waitFor("elected")
            let b = try RunningBaton(["campaign", "job", "--store", store, "--id", "b", "--ttl", "1s"])
            _ = await b.waitFor("following")
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let killedAt = Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec)
            a.signal(SIGKILL)
            _ = await a.waitForExit()
            let successor = await b.waitFor("elected", seconds: 10)
            let tokenA = try #require(elected?["token"] as? Int)
            let tokenB = try #require(successor?["token"] as? Int)
            #expect(tokenB > tokenA)
            // Never before the killed leader's term could have expired in the store: its last renew was at most
            // ttl/3 before the kill, so the term ran until at least ttl − ttl/3 after it.
            let takenAt = try #require(successor?["monotonic_ns"] as? Int)
            #expect(takenAt - killedAt >= 600_000_000)
            b.signal(SIGTERM)
            _ = await b.waitForExit()
        }
    }

    /// `baton campaign KEY | head -1`: the reader goes away, and the next event the campaign prints finds its
    /// standard output closed. It must say so, release what it holds (the next candidate takes the key long
    /// before the ttl) and exit 74, not crash on the write.
    @Test func aClosedOutputEndsTheCampaignAndReleasesTheKey() async throws {
        try await withDatabase { store in
            let b = try RunningBaton(["campaign", "job", "--store", store, "--id", "b", "--ttl", "30s"])
            _ = await b.waitFor("elected")
            let a = Process()
            a.executableURL = try CommandLineTests.executable()
            a.arguments = ["campaign", "job", "--store", store, "--id", "a", "--ttl", "30s"]
            let output = try PrivatePipe()
            let errors = try ErrorFile()
            a.standardOutput = output.writing
            a.standardError = errors.handle
            a.standardInput = FileHandle.nullDevice
            try ChildProcess.forkLock.withLock { _ in try a.run() }
            try output.writing.close()
            // Read until a waits behind b, then close the only read end of its standard output.
            var seen = Data()
            while !String(decoding: seen, as: UTF8.self).contains("\"following\"") {
                let chunk = output.reading.availableData
                try #require(!chunk.isEmpty, "a ended before it followed b")
                seen.append(chunk)
            }
            try output.reading.close()
            // b hands the key to a, whose "elected" line then cannot be written.
            b.signal(SIGTERM)
            #expect(await b.waitForExit() == 0)
            let deadline = ContinuousClock.now + .seconds(20)
            while a.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            if a.isRunning { a.terminate() }
            a.waitUntilExit()
            let stderr = errors.text()
            #expect(a.terminationReason == .exit && a.terminationStatus == 74, "a ended with \(stderr)")
            #expect(stderr.contains("standard output was closed; stopping"))
            #expect(!stderr.contains("crashed"))
            // a released the key: with a 30 s ttl, c can lead this soon only because of that.
            let c = try RunningBaton(["campaign", "job", "--store", store, "--id", "c", "--ttl", "30s"])
            #expect(await c.waitFor("elected", seconds: 10) != nil)
            c.signal(SIGTERM)
            _ = await c.waitForExit()
        }
    }

    /// `baton watch KEY | head -1`: the next change finds the output closed, and the watch exits 74 saying so.
    @Test func aClosedOutputEndsTheWatch() async throws {
        try await withDatabase { store in
            let watch = Process()
            watch.executableURL = try CommandLineTests.executable()
            watch.arguments = ["watch", "job", "--store", store]
            let output = try PrivatePipe()
            let errors = try ErrorFile()
            watch.standardOutput = output.writing
            watch.standardError = errors.handle
            watch.standardInput = FileHandle.nullDevice
            try ChildProcess.forkLock.withLock { _ in try watch.run() }
            try output.writing.close()
            var seen = Data()
            while !seen.contains(UInt8(ascii: "\n")) {
                let chunk = output.reading.availableData
                try #require(!chunk.isEmpty, "the watch ended before its first line")
                seen.append(chunk)
            }
            try output.reading.close()
            let a = try RunningBaton(["campaign", "job", "--store", store, "--id", "a", "--ttl", "30s"])
            _ = await a.waitFor("elected")
            let deadline = ContinuousClock.now + .seconds(20)
            while watch.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            if watch.isRunning { watch.terminate() }
            watch.waitUntilExit()
            let stderr = errors.text()
            #expect(watch.terminationReason == .exit && watch.terminationStatus == 74, "ended with \(stderr)")
            #expect(stderr.contains("standard output was closed; stopping"))
            a.signal(SIGTERM)
            _ = await a.waitForExit()
        }
    }
}

/// A pipe for one child's standard output whose ends no other child inherits (both are close-on-exec, set before
/// any other process of these tests can start; the child gets the writing end as its descriptor 1), so that closing `reading` here leaves the pipe without a reader: a
/// `Pipe()` made while other tests start processes can leak its reading end into them, and the child's writes
/// then never fail.
struct PrivatePipe {
    let reading: FileHandle
    let writing: FileHandle

    init() throws {
        var descriptors: [Int32] = [0, 0]
        // Made and marked under the lock every process start of these tests takes, so none starts in between.
        let made = ChildProcess.forkLock.withLock { _ in
            guard pipe(&descriptors) == 0 else { return false }
            return descriptors.allSatisfy { fcntl($0, F_SETFD, FD_CLOEXEC) == 0 }
        }
        guard made else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        reading = FileHandle(fileDescriptor: descriptors[0], closeOnDealloc: true)
        writing = FileHandle(fileDescriptor: descriptors[1], closeOnDealloc: true)
    }
}

/// A child's standard error in a temporary file (a pipe's writing end leaked into another child would keep its
/// reader from ever seeing the end).
final class ErrorFile {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("baton-stderr-\(UUID())")
    let handle: FileHandle

    init() throws {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        handle = try FileHandle(forWritingTo: url)
    }

    /// What the child wrote so far.
    func text() -> String {
        (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }

    deinit {
        try? handle.close()
        try? FileManager.default.removeItem(at: url)
    }
}
