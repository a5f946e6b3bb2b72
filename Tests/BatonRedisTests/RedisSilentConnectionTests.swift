import Baton
import BatonRedis
import BatonTestKit
import Testing

/// A waiting candidate's connections die silently (blackholed: no reset, no answer) while the leader crashes:
/// the candidate notices through its probes and its expiry timer, with keyspace notifications on, and leads.
@Suite("Redis silent connections")
struct RedisSilentConnectionTests {
    @Test("a waiting candidate whose connections were blackholed takes over from a crashed leader within 3 ttl")
    func blackholedWaiterTakesOver() async throws {
        guard let url = try RedisTestServer.url(), let port = RedisTestServer.port(of: url) else { return }
        let proxy = try BlackholeProxy(forwardingTo: "127.0.0.1", port: port)
        defer { proxy.close() }
        let leaderStore = LeaseStore(try RedisLeaseStore(url))
        let waitingStore = LeaseStore(try RedisLeaseStore("redis://127.0.0.1:\(proxy.port)"))
        let failure = try await SilentConnectionScenario.check(
            leaderStore: leaderStore, waitingStore: waitingStore, proxy: proxy)
        #expect(failure == nil, "\(failure ?? "")")
    }
}

/// A request whose connection goes silent ends at the front's request deadline, long before the command timeout
/// or a probe could close the connection: the front runs a one-server Redis store's requests in the caller's task
/// and aborts their waits at the deadline. The caller is not cancelled.
@Suite("Redis request deadlines")
struct RedisRequestDeadlineTests {
    @Test("a request on a silent connection is a timeout at the request deadline, its caller not cancelled")
    func silentRequestTimesOutAtTheDeadline() async throws {
        guard let url = try RedisTestServer.url(), let port = RedisTestServer.port(of: url) else { return }
        let proxy = try BlackholeProxy(forwardingTo: "127.0.0.1", port: port)
        defer { proxy.close() }
        var configuration = RedisLeaseStore.Configuration()
        configuration.poolSize = 1
        configuration.commandTimeout = .seconds(30)
        configuration.probeInterval = nil
        let driver = try RedisLeaseStore(url: StoreURL("redis://127.0.0.1:\(proxy.port)"), configuration: configuration)
        let store = LeaseStore(driver, configuration: .init(requestTimeout: .milliseconds(500)))
        try await store.withRunning { (store: LeaseStore) async throws in
            let key = unique("deadline")
            // The first request also waits for the connection, which a loaded machine may take longer than the
            // short deadline to make: it is asked again until it is answered.
            let connected = try await eventually(timeout: .seconds(30)) {
                do {
                    return try await store.current(key: key) == nil
                } catch {
                    return false
                }
            }
            try #require(connected, "no answer through the proxy")
            #expect(proxy.blackholeOpenConnections() == 1)
            let started = ContinuousClock.now
            let outcome = await Task { () -> (code: BatonError.Code?, cancelled: Bool) in
                do {
                    _ = try await store.current(key: key)
                    return (nil, Task.isCancelled)
                } catch let error as BatonError {
                    return (error.code, Task.isCancelled)
                } catch {
                    return (nil, Task.isCancelled)
                }
            }.value
            let elapsed = ContinuousClock.now - started
            #expect(outcome.code == .timeout)
            #expect(!outcome.cancelled)
            #expect(elapsed < .seconds(5), "the request ended after \(elapsed), not at its 500 ms deadline")
        }
    }
}
