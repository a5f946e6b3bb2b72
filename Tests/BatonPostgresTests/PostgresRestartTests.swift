import Baton
import BatonPostgres
import BatonTestKit
import Foundation
import Synchronization
import Testing

/// The database restarting while a leader holds a lease, on the server of its own that `scripts/test` starts for
/// this (`BATON_TEST_POSTGRES_RESTART_URL`), restarted by the script `BATON_TEST_POSTGRES_RESTART`.
@Suite(.serialized) struct PostgresRestartTests {
    @Test func aLeaderKeepsItsTermAndTokenAcrossADatabaseRestart() async throws {
        guard let urlText = try TestServer.variable("BATON_TEST_POSTGRES_RESTART_URL"),
            let script = try TestServer.variable("BATON_TEST_POSTGRES_RESTART")
        else { return }
        let url = try StoreURL(urlText)
        let configuration = PostgresLeaseStore.Configuration(maximumConnections: 2)
        let stores = try (0..<2).map { _ in
            LeaseStore(
                try PostgresLeaseStore(url: url, configuration: configuration),
                configuration: .init(requestTimeout: .seconds(2))
            )
        }
        try await usingAll(stores) { stores in
            let (leaderStore, otherStore) = (stores[0], stores[1])
            let key = unique("restart")
            let ttl: Duration = .seconds(60)
            // The first call connects and sets up the schema, which a loaded machine may take longer than the
            // 2 s request timeout for: retried on a timeout, as a caller would.
            var first: Lease?
            _ = try await eventually(timeout: .seconds(20), interval: .milliseconds(100)) {
                do {
                    first = try await leaderStore.acquire(key: key, holder: "leader", ttl: ttl, metadata: "before")
                        .lease
                    return true
                } catch let error as BatonError where error.code == .timeout {
                    return false
                }
            }
            var lease = try #require(first)
            let watcher = ChangeRecorder(try otherStore.changes(key: key))
            defer { watcher.cancel() }
            try #require(try await watcher.wait { $0.last??.token == lease.token }, "the leader")

            // Renew without pause while the server restarts: every failure must say "store down", never "lost".
            let restarted = Mutex(false)
            let restart = Task {
                defer { restarted.withLock { $0 = true } }
                try await run(script)
            }
            var failures: [BatonError.Code] = []
            while true {
                let finished = restarted.withLock { $0 }
                do {
                    lease = try await leaderStore.renew(lease, ttl: ttl)
                } catch let error as BatonError {
                    failures.append(error.code)
                }
                if finished { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            try await restart.value
            #expect(failures.allSatisfy { $0 == .storeUnavailable || $0 == .timeout }, "renew failed with \(failures)")

            // Once the pool has reconnected, the same term goes on: renewals keep the token, the lease is held.
            let renewed = try await eventually {
                do {
                    lease.metadata = "after"
                    let renewed = try await leaderStore.renew(lease, ttl: ttl)
                    #expect(renewed.token == lease.token)
                    return true
                } catch let error as BatonError where error.code == .storeUnavailable || error.code == .timeout {
                    return false
                }
            }
            try #require(renewed, "a renewal succeeds after the restart")
            let current = try await otherStore.current(key: key)
            #expect(current?.holder == "leader" && current?.token == lease.token && current?.metadata == "after")
            let refused = try await otherStore.acquire(key: key, holder: "other", ttl: ttl, metadata: nil)
            guard case .held(let leader) = refused else {
                Issue.record("another holder acquired the key after the restart: \(refused)")
                return
            }
            #expect(leader.holder == "leader" && leader.token == lease.token)

            // The listening connection came back too: a new subscriber sees the release at once.
            let follower = ChangeRecorder(try otherStore.changes(key: key))
            defer { follower.cancel() }
            try #require(try await follower.wait { $0.last??.metadata == "after" }, "the leader after the restart")
            try await leaderStore.release(lease)
            try #require(
                try await follower.wait(timeout: .seconds(5)) { $0.last == .some(nil) }, "nil after the release")
            let next = try #require(
                try await otherStore.acquire(key: key, holder: "other", ttl: ttl, metadata: nil).lease)
            #expect(next.token > lease.token)
            try await otherStore.release(next)
        }
    }

    /// Runs the restart script and waits for it, polling `waitpid` without blocking a thread (Foundation's
    /// `Process` termination handler was seen never to fire for a child that had exited).
    private func run(_ script: String) async throws {
        var pid: pid_t = 0
        let argument = strdup(script)
        defer { free(argument) }
        let spawned = posix_spawn(&pid, script, nil, nil, [argument, nil], environ)
        try #require(spawned == 0, "cannot start the restart script \(script): error \(spawned)")
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                #expect(status == 0, "the restart script \(script) ended with wait status \(status)")
                return
            }
            // ECHILD: someone else reaped it; the checks that follow show whether the server came back.
            if result < 0 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the restart script \(script) did not finish within 120 s")
    }
}
