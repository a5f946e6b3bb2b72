import Baton
import BatonEtcd
import BatonTestKit
import Foundation
import Synchronization
import Testing

/// Baton and etcd's own `etcdctl elect` campaign in one queue and see one leader (real etcdctl processes).
@Suite struct EtcdInteropTests {
    /// An `etcdctl` process whose standard output is collected as it arrives.
    final class Etcdctl: Sendable {
        /// The output read so far, shared with the pipe's reading handler.
        final class Output: Sendable {
            let text = Mutex("")
        }

        let process: Process
        private let output = Output()

        init(_ binary: String, endpoint: String, arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--endpoints", endpoint] + arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            let output = self.output
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                if !data.isEmpty { output.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
            }
            self.process = process
            try process.run()
        }

        var text: String { output.text.withLock { $0 } }

        /// Sends `signal` and waits for the process to exit.
        func stop(_ signal: Int32 = SIGINT) {
            if process.isRunning { kill(process.processIdentifier, signal) }
            process.waitUntilExit()
        }
    }

    static func setup() throws -> (url: String, endpoint: String, etcdctl: String)? {
        guard let url = try EtcdTestServer.value(), let etcdctl = try EtcdTestServer.value("BATON_TEST_ETCDCTL"),
            let endpoint = EtcdTestServer.endpoint(of: url)
        else { return nil }
        return (url, endpoint, etcdctl)
    }

    /// The candidate keys of an election, as `etcdctl get --prefix --keys-only` lists them.
    static func candidateKeys(_ binary: String, endpoint: String, key: String) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--endpoints", endpoint, "get", "--prefix", "--keys-only", key + "/"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// `etcdctl elect -l KEY` prints the Baton leader's key (`KEY/<lease hex>`) and metadata.
    @Test func etcdctlObservesBatonLeader() async throws {
        guard let (url, endpoint, binary) = try Self.setup() else { return }
        let store = try EtcdLeaseStore(url)
        try await withRunning([store]) {
            let key = unique("interop-observe")
            let lease = try #require(
                try await store.acquire(key: key, holder: "baton-a", ttl: .seconds(30), metadata: "10.0.0.7:8080").lease
            )
            let observer = try Etcdctl(binary, endpoint: endpoint, arguments: ["elect", "-l", key])
            let seen = try await eventually { observer.text.contains("10.0.0.7:8080") }
            observer.stop()
            #expect(seen, "etcdctl elect -l printed: \(observer.text)")
            #expect(observer.text.hasPrefix(key + "/"), "etcdctl elect -l printed: \(observer.text)")
            try await store.release(lease)
        }
    }

    /// An `etcdctl elect KEY PROPOSAL` process that leads is Baton's leader (holder and metadata are its
    /// proposal); a Baton candidate queues behind it and leads once etcdctl resigns on SIGINT.
    @Test func batonSeesEtcdctlLeaderAndQueuesBehindIt() async throws {
        guard let (url, endpoint, binary) = try Self.setup() else { return }
        let store = try EtcdLeaseStore(url)
        try await withRunning([store]) {
            let key = unique("interop-etcdctl-leads")
            let leader = try Etcdctl(binary, endpoint: endpoint, arguments: ["elect", key, "etcdctl-proposal"])
            defer { leader.stop(SIGKILL) }
            #expect(try await eventually { leader.text.contains("etcdctl-proposal") }, "etcdctl never led")
            let current = try await store.current(key: key)
            #expect(current?.holder == "etcdctl-proposal" && current?.metadata == "etcdctl-proposal")
            let refused = try await store.acquire(
                key: key, holder: "baton-b", ttl: .seconds(30), metadata: nil, waiting: true)
            #expect(refused == .held(by: try #require(current)))
            leader.stop()
            let lease = try await store.acquire(key: key, holder: "baton-b", ttl: .seconds(30), metadata: nil).lease
            #expect(lease != nil && lease!.token > current!.token)
            if let lease { try await store.release(lease) }
        }
    }

    /// An `etcdctl elect` that arrives while Baton leads waits, and leads as soon as Baton releases.
    @Test func etcdctlWaitsForBatonLeader() async throws {
        guard let (url, endpoint, binary) = try Self.setup() else { return }
        let store = try EtcdLeaseStore(url)
        try await withRunning([store]) {
            let key = unique("interop-baton-leads")
            let lease = try #require(
                try await store.acquire(key: key, holder: "baton-a", ttl: .seconds(30), metadata: nil).lease)
            let waiting = try Etcdctl(binary, endpoint: endpoint, arguments: ["elect", key, "etcdctl-next"])
            defer { waiting.stop(SIGKILL) }
            // etcdctl is queued behind Baton: its key exists, and it has not printed its proposal.
            #expect(try await eventually { try Self.candidateKeys(binary, endpoint: endpoint, key: key).count == 2 })
            #expect(!waiting.text.contains("etcdctl-next"), "etcdctl led while Baton held the key")
            try await store.release(lease)
            #expect(
                try await eventually { waiting.text.contains("etcdctl-next") }, "etcdctl did not lead after the release"
            )
            let current = try await store.current(key: key)
            #expect(current?.holder == "etcdctl-next" && current!.token > lease.token)
            waiting.stop()
        }
    }
}
