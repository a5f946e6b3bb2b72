@_spi(BatonStoreKit) import Baton
import ServiceLifecycle

extension RedisLeaseStore {
    /// Runs the store: makes its connections (the first to each node at once, the others as operations ask for
    /// them) until the task is cancelled or a graceful shutdown begins, then closes every connection and ends
    /// every ``changes(key:)`` sequence before it returns. Operations after that throw
    /// ``Baton/BatonError/Code/storeUnavailable``.
    /// - Throws: ``Baton/BatonError/Code/unauthorized`` if a node refuses the credentials. A node that cannot be
    ///   reached does not end `run()`: operations fail with `storeUnavailable` until it answers.
    public func run() async throws {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    await withGracefulShutdownHandler {
                        await self.loop.run()
                    } onGracefulShutdown: {
                        self.loop.finish()
                    }
                }
                group.addTask { try await self.checkCredentials() }
            }
        } catch {
            await closeConnections()
            throw error
        }
        await closeConnections()
    }

    /// Connects to every node once; throws if one refuses the credentials.
    private func checkCredentials() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for node in nodes {
                group.addTask {
                    do {
                        _ = try await node.connection()
                    } catch let error as BatonError where error.code == .unauthorized {
                        throw error
                    } catch {
                        // Unreachable now: operations report it, and the pool tries again.
                    }
                }
            }
        }
    }

    /// Every connection open now: commands' and pub/sub.
    var openConnections: [RedisConnection] {
        nodes.flatMap(\.openConnections) + subscriber.openConnections
    }

    private func closeConnections() async {
        signals.finishAll()
        await subscriber.close()
        for node in nodes { await node.close() }
    }
}
