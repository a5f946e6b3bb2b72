@_spi(BatonStoreKit) import Baton
import Logging
import PostgresNIO

/// The one `LISTEN` connection of a ``PostgresLeaseStore``: turns notifications on the schema's channel
/// (payload: the key) into ``ChangeSignals`` wake-ups, and keeps the connection alive.
///
/// ``run()`` loops until its task is cancelled: connect, `LISTEN`, wake every subscriber (anything may have
/// changed while no connection listened), then wake the subscribers of each notified key. A connection that
/// fails, or does not answer a keep-alive query (sent every `keepAlive`) within `keepAliveTimeout`, is closed
/// (one that died silently is replaced within about `keepAlive + keepAliveTimeout`); every subscriber is
/// woken (so that feeds read the store and report it if it is down) and the loop connects again after a
/// backoff of 100 ms doubling up to 5 s.
struct PostgresChangeListener: Sendable {
    let settings: PostgresConnection.Configuration
    let channel: String
    let keepAlive: Duration
    let keepAliveTimeout: Duration
    let signals: ChangeSignals
    let logger: Logger
    let redactedURL: String

    func run() async {
        var backoff: Duration = .milliseconds(100)
        var connectionID = 0
        while !Task.isCancelled {
            connectionID += 1
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: settings,
                    id: connectionID,
                    logger: logger
                )
                await listen(on: connection, backoff: &backoff)
                try? await connection.close()
            } catch {
                if Task.isCancelled { break }
                logger.debug(
                    "baton: the PostgreSQL change listener cannot connect",
                    metadata: ["url": "\(redactedURL)", "error": "\(String(reflecting: error))"]
                )
            }
            if Task.isCancelled { break }
            signals.notifyAll()
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Listens on `connection` until it fails or the task is cancelled.
    private func listen(on connection: PostgresConnection, backoff: inout Duration) async {
        do {
            try await connection.listen(on: channel) { notifications in
                logger.debug("baton: listening for changes", metadata: ["channel": "\(channel)"])
                signals.notifyAll()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await notification in notifications {
                            signals.notify(notification.payload)
                        }
                        throw ListenerEnded()
                    }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: keepAlive)
                            _ = try await PostgresDeadline.run(keepAliveTimeout, closing: connection) { connection in
                                try await connection.query("SELECT 1", logger: logger).collect().count
                            }
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

    private struct ListenerEnded: Error {}
}

/// Deadlines for work on one connection: a query cannot be cancelled, but closing its connection fails it.
enum PostgresDeadline {
    /// Thrown when the deadline passed.
    struct Passed: Error {}

    /// Runs `body` with `connection`; if `limit` passes first, closes the connection (which fails whatever
    /// runs on it) and throws ``Passed``.
    static func run<T: Sendable>(
        _ limit: Duration,
        closing connection: PostgresConnection,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body(connection) }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            guard let first = try await group.next(), let value = first else {
                let _: EventLoopFuture<Void> = connection.close()
                group.cancelAll()
                throw Passed()
            }
            group.cancelAll()
            return value
        }
    }
}
