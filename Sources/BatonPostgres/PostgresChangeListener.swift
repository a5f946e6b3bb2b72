@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO

/// The one `LISTEN` connection of a ``PostgresLeaseStore``: turns notifications on the schema's states channel
/// (payload: the key and its new state, ``PostgresStatePayload``) into recorded states and ``ChangeSignals``
/// wake-ups, and keeps the connection alive.
///
/// ``run()`` loops until its task is cancelled: connect, `LISTEN`, wake every subscriber (anything may have
/// changed while no connection listened: the states recorded so far are forgotten, so feeds read the
/// database), then record each notified state and wake the subscribers of its key. A connection that
/// fails, or does not answer a keep-alive query (sent every `keepAlive`) within `keepAliveTimeout`, is closed
/// (one that died silently is replaced within about `keepAlive + keepAliveTimeout`); every subscriber is
/// woken (so that feeds read the store and report it if it is down) and the loop connects again after a
/// backoff of 100 ms doubling up to 5 s. The keep-alive interval, its timeout and the backoff are timed by the
/// store's clock. With a pool of one, requests run on the listener's connection too (see
/// ``PostgresSharedConnection``).
struct PostgresChangeListener: Sendable {
    let settings: PostgresConnection.Configuration
    let channel: String
    let keepAlive: Duration
    let keepAliveTimeout: Duration
    let clock: BatonClock
    let signals: ChangeSignals
    /// The states the notifications carried, for the change feeds.
    let states: PushedLeaderStates
    let logger: Logger
    let redactedURL: String
    /// With a pool of one, the loop the connection is made on (where requests run), else nil (any loop).
    let loop: (any EventLoop)?
    /// With a pool of one, where the listener lends its connection to requests.
    var shared: PostgresSharedConnection?

    func run() async {
        var backoff: Duration = .milliseconds(100)
        var connectionID = 0
        while !Task.isCancelled {
            connectionID += 1
            do {
                let connection = try await PostgresConnection.connect(
                    on: loop ?? PostgresConnection.defaultEventLoopGroup.any(),
                    configuration: settings,
                    id: connectionID,
                    logger: logger
                )
                await listen(on: connection, backoff: &backoff)
                shared?.disconnected(nil)
                try? await connection.close()
            } catch {
                if Task.isCancelled { break }
                shared?.disconnected(error)
                logger.debug(
                    "baton: the PostgreSQL change listener cannot connect",
                    metadata: ["url": "\(redactedURL)", "error": "\(String(reflecting: error))"]
                )
            }
            if Task.isCancelled { break }
            states.forgetAll()
            signals.notifyAll()
            try? await clock.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Listens on `connection` until it fails or the task is cancelled.
    private func listen(on connection: PostgresConnection, backoff: inout Duration) async {
        do {
            try await connection.listen(on: channel) { notifications in
                logger.debug("baton: listening for changes", metadata: ["channel": "\(channel)"])
                shared?.connected(connection)
                states.forgetAll()
                signals.notifyAll()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await notification in notifications {
                            if let (key, state) = PostgresStatePayload.parse(notification.payload) {
                                states.record(key, state)
                                signals.notify(key)
                            } else {
                                // A payload of another form (a later Baton's): everyone reads.
                                states.forgetAll()
                                signals.notifyAll()
                            }
                        }
                        throw ListenerEnded()
                    }
                    group.addTask {
                        while true {
                            try await clock.sleep(for: keepAlive)
                            try await check(connection)
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch {
            if Task.isCancelled { return }
            logger.debug(
                "baton: the PostgreSQL change listener lost its connection",
                metadata: ["url": "\(redactedURL)", "error": "\(String(reflecting: error))"]
            )
        }
        backoff = .milliseconds(100)
    }

    /// Asks `connection` for `SELECT 1` within the keep-alive timeout; past it, the connection is closed (a
    /// query cannot be cancelled otherwise) and ``PostgresDeadline/Passed`` thrown.
    private func check(_ connection: PostgresConnection) async throws {
        _ = try await PostgresDeadline.run(keepAliveTimeout, clock: clock) {
            try await withTaskCancellationHandler {
                try await connection.query("SELECT 1", logger: logger).collect().count
            } onCancel: {
                let _: EventLoopFuture<Void> = connection.close()
            }
        }
    }

    private struct ListenerEnded: Error {}
}
