import Baton
import BatonRedis
import BatonTestKit
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Reconnection backoff runs on the store's clock: while a manual clock stands still, a node that refused a
/// connection is not tried again however much real time passes; once the clock moves past the backoff, it is.
@Suite("Redis reconnection backoff")
struct RedisBackoffTests {
    /// A TCP listener that accepts connections, counts them and closes them at once (so every handshake fails).
    final class RefusingServer: Sendable {
        private final class Count: Sendable {
            let value = Atomic(0)
        }

        private let accepted = Count()
        private let channel: any Channel

        init() async throws {
            let accepted = accepted
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { child in
                    accepted.value.add(1, ordering: .relaxed)
                    return child.close()
                }
                .bind(host: "127.0.0.1", port: 0)
                .get()
        }

        var port: Int { channel.localAddress?.port ?? 0 }
        var connections: Int { accepted.value.load(ordering: .relaxed) }
        func close() async { try? await channel.close() }
    }

    @Test func backoffWaitsForTheStoreClock() async throws {
        let server = try await RefusingServer()
        let clock = ManualClock()
        var configuration = RedisLeaseStore.Configuration()
        configuration.poolSize = 1
        let driver = try RedisLeaseStore(
            "redis://127.0.0.1:\(server.port)", configuration: configuration, clock: clock)
        try await LeaseStore(driver).withRunning { store in
            // The first attempt (run()'s own, or this call's) fails; the next calls fail at once, without one.
            for _ in 0..<3 {
                await #expect {
                    _ = try await store.current(key: "k")
                } throws: { error in
                    (error as? BatonError)?.code == .storeUnavailable
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(server.connections == 1)
            // Past the longest backoff on the store's clock, the next call connects again.
            clock.advance(by: .seconds(2))
            await #expect {
                _ = try await store.current(key: "k")
            } throws: { error in
                (error as? BatonError)?.code == .storeUnavailable
            }
            #expect(server.connections == 2)
        }
        await server.close()
    }
}
