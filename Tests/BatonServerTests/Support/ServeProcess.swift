import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a child process writes on standard error, collected as it comes.
final class OutputBuffer: Sendable {
    private let text = Mutex("")

    func append(_ data: Data) {
        let chunk = String(decoding: data, as: UTF8.self)
        text.withLock { $0 += chunk }
    }

    var contents: String { text.withLock { $0 } }
}

/// A `baton serve` process started from the built executable, on 127.0.0.1 and a port the kernel picks.
final class ServeProcess {
    let process: Process
    let output: OutputBuffer
    /// The port it listens on, read from its start line.
    private(set) var port = 0

    /// The `baton` executable beside the test bundle (both live in the build directory).
    static func executable() throws -> URL {
        var directory = try #require(Bundle.main.executableURL).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("baton")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        Issue.record("no baton executable beside the tests; build it with swift build --build-tests")
        throw CancellationError()
    }

    /// Starts `baton serve ARGUMENTS` with `environment` added to this process's (without `BATON_*`).
    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = try Self.executable()
        process.arguments = ["serve"] + arguments
        var processEnvironment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BATON_") }
        processEnvironment.merge(environment) { _, new in new }
        process.environment = processEnvironment
        let errors = Pipe()
        output = OutputBuffer()
        let output = self.output
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                output.append(data)
            }
        }
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Waits (at most 30 s) for the line `listening on http://HOST:PORT` (or `https://`) and returns the port.
    @discardableResult
    func waitUntilListening() async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let text = output.contents
            if let start = text.range(of: "listening on "), let range = text[start.upperBound...].range(of: "://") {
                let rest = text[range.upperBound...]
                let address = rest.prefix { !$0.isWhitespace && $0 != "," }
                if let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) {
                    self.port = port
                    return port
                }
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("baton serve did not start: \(output.contents)")
    }

    /// Sends `signal` to the process.
    func send(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits at most `limit` for the process to exit and returns its status, or nil if it is still running.
    func waitForExit(_ limit: Duration = .seconds(30)) async throws -> Int32? {
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// Kills the process if it still runs (for cleanup after a failed test).
    func stop() {
        if process.isRunning {
            send(SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A fresh temporary directory, removed after `body`.
func withTemporaryDirectory<Value>(_ body: (URL) async throws -> Value) async throws -> Value {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("baton-serve-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}
