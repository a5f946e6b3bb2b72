import Baton
import BatonEtcd
import BatonTestKit
import Foundation
import Testing

/// An etcd of the test's own (`BATON_TEST_ETCD_SERVER`), stopped and started again while a leader holds the lease.
@Suite(.serialized) struct EtcdRestartTests {
    final class Server {
        let binary: String
        let clientPort: Int
        let peerPort: Int
        let directory: URL
        var process: Process?

        init(binary: String) throws {
            self.binary = binary
            clientPort = try Self.freePort()
            peerPort = try Self.freePort()
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-etcd-\(UUID())")
        }

        var url: String { "etcd://127.0.0.1:\(clientPort)" }

        /// A TCP port on 127.0.0.1 that nothing listens on (the kernel's choice for port 0).
        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
                }
            }
            guard bound else { throw BatonError.storeUnavailable("no free port") }
            return Int(UInt16(bigEndian: address.sin_port))
        }

        /// Starts etcd (keeping its data directory across restarts) and waits until it answers.
        func start() async throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            let client = "http://127.0.0.1:\(clientPort)"
            let peer = "http://127.0.0.1:\(peerPort)"
            process.arguments = [
                "--name", "restart", "--data-dir", directory.path, "--listen-client-urls", client,
                "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "restart=\(peer)", "--heartbeat-interval", "10", "--election-timeout", "100",
                "--grpc-keepalive-min-time", "500ms",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
            let store = try EtcdLeaseStore(url)
            for _ in 0..<200 {
                if (try? await store.members(group: "probe")) != nil {
                    try await store.close()
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            try await store.close()
            throw BatonError.storeUnavailable("etcd on \(clientPort) did not start")
        }

        /// Stops etcd with SIGTERM and waits for it to exit.
        func stop() {
            guard let process else { return }
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            self.process = nil
        }

        deinit {
            if let process { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    static func makeServer() throws -> Server? {
        guard let binary = try EtcdTestServer.value("BATON_TEST_ETCD_SERVER") else { return nil }
        return try Server(binary: binary)
    }

    /// A leader's etcd goes away: the elector demotes itself no later than one ttl after the store went away
    /// (its deadline is the last renew's send time plus the ttl, less the margin), and after etcd is back the
    /// election goes on: the elector leads again.
    @Test func leaderDemotesByDeadlineWhileEtcdIsDownAndLeadsAgainAfter() async throws {
        guard let server = try Self.makeServer() else { return }
        try await server.start()
        let store = try EtcdLeaseStore(server.url)
        let ttl = Duration.seconds(3)
        let elector = try LeaderElector(
            store: LeaseStore(store),
            key: unique("restart"),
            holder: "leader",
            configuration: ElectorConfiguration(ttl: ttl),
            clock: ContinuousClock()
        )
        let recorder = EventRecorder(elector.events)
        let running = Task { try await elector.run() }
        defer {
            running.cancel()
            recorder.cancel()
        }
        let elected = try await eventually {
            recorder.events.contains { if case .elected = $0.1 { true } else { false } }
        }
        try #require(elected, "the elector never led: \(recorder.events.map(\.1))")

        let stoppedAt = ContinuousClock.now
        server.stop()
        let demoted = try await eventually(timeout: ttl * 3) {
            recorder.events.contains { if case .demoted = $0.1 { true } else { false } }
        }
        try #require(demoted, "the elector did not demote while etcd was down: \(recorder.events.map(\.1))")
        let demotedAt = try #require(recorder.events.first { if case .demoted = $0.1 { true } else { false } }?.0)
        #expect(demotedAt < stoppedAt + ttl, "demoted \(demotedAt - stoppedAt) after etcd stopped; the ttl is \(ttl)")

        try await server.start()
        let electedAgain = try await eventually(timeout: .seconds(30)) {
            recorder.events.filter { if case .elected = $0.1 { true } else { false } }.count >= 2
        }
        #expect(electedAgain, "the elector did not lead again after etcd came back: \(recorder.events.map(\.1))")
        running.cancel()
        _ = await running.result
        try await store.close()
        server.stop()
    }
}
