import Baton
import BatonTestKit
import Foundation
import NIOPosix
import Testing

@testable import BatonRedis

/// A `redis-server` of the test's own (`BATON_TEST_REDIS_SERVER` on `BATON_TEST_REDIS_RESTART_PORT`, without
/// persistence), stopped and started again while a lease is held.
@Suite(.serialized) struct RedisRestartTests {
    final class Server {
        let binary: String
        let port: Int
        let directory: URL
        var process: Process?

        init(binary: String, port: Int) {
            self.binary = binary
            self.port = port
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-redis-\(UUID())")
        }

        func start() async throws {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [
                "--port", String(port), "--bind", "127.0.0.1", "--dir", directory.path, "--save", "",
                "--appendonly", "no",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
            // Bounded wait until it answers.
            let started = try await withRedisStore("redis://127.0.0.1:\(port)") { store, _ in
                for _ in 0..<100 {
                    if await Self.answers(store) { return true }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return false
            }
            if !started { throw BatonError.storeUnavailable("redis-server on \(port) did not start") }
        }

        private static func answers(_ store: LeaseStore) async -> Bool {
            do {
                _ = try await store.current(key: "probe")
                return true
            } catch {
                return false
            }
        }

        /// Stops the server with `SHUTDOWN NOSAVE` (it has no persistence: everything is forgotten) and waits
        /// until the port refuses connections.
        func stop() async throws {
            guard process != nil else { return }
            let endpoint = RedisEndpoint(
                host: "127.0.0.1",
                port: port,
                database: 0,
                connectTimeout: .seconds(2),
                commandTimeout: .seconds(2)
            )
            let connection = try await RedisConnection.connect(
                to: endpoint,
                group: MultiThreadedEventLoopGroup.singleton
            )
            _ = try? await connection.send(RESPCommand("SHUTDOWN", "NOSAVE"))
            await connection.close()
            for _ in 0..<100 {
                do {
                    let probe = try await RedisConnection.connect(
                        to: endpoint,
                        group: MultiThreadedEventLoopGroup.singleton
                    )
                    await probe.close()
                    try await Task.sleep(for: .milliseconds(20))
                } catch {
                    process = nil
                    return
                }
            }
            throw BatonError.storeUnavailable("redis-server on \(port) did not stop")
        }

        deinit {
            if let process { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    static func makeServer() throws -> Server? {
        guard let binary = try RealServer.require("BATON_TEST_REDIS_SERVER"),
            let port = try RealServer.require("BATON_TEST_REDIS_RESTART_PORT")
        else { return nil }
        let number = try #require(Int(port), "BATON_TEST_REDIS_RESTART_PORT is not a port number: \(port)")
        return Server(binary: binary, port: number)
    }

    /// Retries `body` while the store is unavailable (the client reconnecting), for at most five seconds.
    func retrying<T>(_ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try await body()
            } catch let error as BatonError where error.code == .storeUnavailable && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The server restarts without persistence mid-lease: while it is down, operations fail with
    /// `storeUnavailable` (never `held` or `lost`); after it is back the old term is gone (renew is `lost`), and
    /// the next term's token is still larger, floored at the server's clock.
    @Test func restartMidLease() async throws {
        guard let server = try Self.makeServer() else { return }
        try await server.start()
        let url = "redis://127.0.0.1:\(server.port)"
        try await withRedisStore(url) { store, _ in
            try await withRedisStore(url) { other, _ in
                try await checkRestartMidLease(server, store, other)
            }
        }
        try await server.stop()
    }

    private func checkRestartMidLease(_ server: Server, _ store: LeaseStore, _ other: LeaseStore) async throws {
        let key = unique("restart")
        let lease = try #require(try await store.acquire(key: key, holder: "a", ttl: .seconds(30)).lease)
        #expect(try await other.acquire(key: key, holder: "b", ttl: .seconds(30)).lease == nil)

        try await server.stop()
        await #expect {
            _ = try await store.renew(lease, ttl: .seconds(30))
        } throws: { error in
            (error as? BatonError)?.code == .storeUnavailable
        }
        try await server.start()

        let next = try #require(
            try await retrying { try await other.acquire(key: key, holder: "b", ttl: .seconds(30)) }.lease)
        #expect(next.token > lease.token, "the token after the restart \(next.token) is not above \(lease.token)")
        await #expect {
            _ = try await retrying { try await store.renew(lease, ttl: .seconds(30)) }
        } throws: { error in
            (error as? BatonError)?.code == .lost
        }
        let current = try await retrying { try await store.current(key: key) }
        #expect(current?.holder == "b" && current?.token == next.token)
        try await other.release(next)
    }

    /// A change feed watching a key when the server restarts either ends with the store's error or goes on; a
    /// feed subscribed again after the restart sees the new leader pushed.
    @Test func changesAfterRestart() async throws {
        guard let server = try Self.makeServer() else { return }
        try await server.start()
        let url = "redis://127.0.0.1:\(server.port)"
        try await withRedisStore(url) { watcher, _ in
            try await withRedisStore(url) { writer, _ in
                let key = unique("resubscribe")
                _ = try await writer.acquire(key: key, holder: "a", ttl: .seconds(60))
                let before = ChangeRecorder(try watcher.changes(key: key))
                #expect(try await before.wait { $0.last??.holder == "a" })
                try await server.stop()
                try await server.start()
                let after = ChangeRecorder(try await retrying { try watcher.changes(key: key) })
                #expect(try await after.wait { $0.count == 1 && $0[0] == nil } || after.finished)
                _ = try await retrying { try await writer.acquire(key: key, holder: "b", ttl: .seconds(60)) }
                let pushed = try await after.wait { $0.last??.holder == "b" }
                #expect(pushed, "observations after the restart: \(after.observations)")
                before.cancel()
                after.cancel()
            }
        }
        try await server.stop()
    }
}
