import Baton
import Logging
import PostgresNIO
import Synchronization

extension PostgresLeaseStore {
    /// Runs `body` on one connection of the pool once the store is ready, mapping errors to ``BatonError``.
    ///
    /// The request is bounded by the caller: the front's deadline cancels it. Cancelling it gives up the wait for
    /// a connection, or closes the connection it runs on (which fails its query at once; a query cannot be
    /// cancelled otherwise), so a request on a connection that died silently ends when it is cancelled. With a
    /// `timeout`, the request is also cancelled when that much time passed on the store's clock (a change feed's
    /// read, which no front bounds).
    @discardableResult
    func perform<T: Sendable>(
        _ operation: String,
        timeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        let logger = logger
        do {
            let connections = try await ready(for: operation)
            guard let timeout else { return try await Self.onConnection(connections, logger, body) }
            return try await PostgresDeadline.run(timeout, clock: clock) {
                try await Self.onConnection(connections, logger, body)
            }
        } catch {
            throw Self.storeError(error, operation: operation, url: redactedURL)
        }
    }

    /// Runs `body` in a transaction on one connection of the pool (see ``perform(_:timeout:_:)``).
    func transaction<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        try await perform(operation) { connection, logger in
            try await connection.withTransaction(logger: logger) { connection in
                try await body(connection, logger)
            }
        }
    }

    /// Runs `body` on a connection of the pool, or on the shared connection in its turn.
    static func onConnection<T: Sendable>(
        _ connections: PostgresConnections,
        _ logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        switch connections {
        case .pool(let client): try await onConnection(client, logger, body)
        case .shared(let shared): try await shared.run(logger, body)
        }
    }

    /// Runs `body` on a connection leased from `client`; cancelling the task cancels the wait for a connection
    /// or closes the connection in use. A connection found closed by another request's cancellation is waited
    /// out and replaced.
    static func onConnection<T: Sendable>(
        _ client: PostgresClient,
        _ logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            let leased = LeasedConnection()
            do {
                return try await onOneConnection(client, leased, logger, body)
            } catch let error as PSQLError
                where error.code == .clientClosedConnection && !Task.isCancelled
                && attempt < closedConnectionAttempts
            {
                // Not this request's cancellation: the connection was closed as it went back to the pool (another
                // request, cancelled on a silent peer, closed it). The pool keeps lending such a connection until
                // its channel is gone, which with TLS takes the TLS shutdown (its close_notify is never answered by
                // a silent peer; see `PostgresConnectionSettings.tlsShutdownTimeout`). The outcome is unknown, as
                // after a timeout, and every operation may be retried with the same arguments: once the
                // connection is gone, on another, until one works, the attempts run out or the request is
                // cancelled (its deadline).
                attempt += 1
                if let connection = leased.used { await closed(connection) }
                await Task.yield()
            }
        }
    }

    /// How many connections one request tries when each it is lent turns out to be closed.
    static let closedConnectionAttempts = 8

    private static func onOneConnection<T: Sendable>(
        _ client: PostgresClient,
        _ leased: LeasedConnection,
        _ logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        try await withTaskCancellationHandler {
            try await client.withConnection { connection in
                try leased.begin(connection)
                defer { leased.end() }
                return try await body(connection, logger)
            }
        } onCancel: {
            leased.cancel()
        }
    }

    /// Returns once `connection`'s channel is closed (so the pool lends it no more), or the task is cancelled.
    private static func closed(_ connection: PostgresConnection) async {
        if connection.isClosed { return }
        let waiter = CloseWaiter()
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiter.wait(continuation)
                connection.closeFuture.whenComplete { _ in waiter.resume() }
            }
        } onCancel: {
            waiter.resume()
        }
    }
}

/// One continuation resumed once, by the first of a close and a cancellation.
private final class CloseWaiter: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<Void, Never>)
        case done
    }

    private let state = Mutex(State.idle)

    func wait(_ continuation: CheckedContinuation<Void, Never>) {
        let resumeNow = state.withLock { state -> Bool in
            guard case .idle = state else { return true }
            state = .waiting(continuation)
            return false
        }
        if resumeNow { continuation.resume() }
    }

    func resume() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state = .done }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        continuation?.resume()
    }
}

/// The connection a request has leased, so that cancelling the request closes it.
private final class LeasedConnection: Sendable {
    private struct State {
        var connection: PostgresConnection?
        var used: PostgresConnection?
        var cancelled = false
    }

    private let state = Mutex(State())

    /// Records the connection the request now uses.
    /// - Throws: `CancellationError` if the request was cancelled already (the connection goes back unused).
    func begin(_ connection: PostgresConnection) throws {
        try state.withLock { state throws in
            if state.cancelled { throw CancellationError() }
            state.connection = connection
            state.used = connection
        }
    }

    /// The connection the request was lent, if it got one.
    var used: PostgresConnection? { state.withLock { $0.used } }

    /// The request is done with its connection.
    func end() { state.withLock { $0.connection = nil } }

    /// The request is cancelled: closes its connection if it holds one, which fails the query running on it.
    func cancel() {
        let connection = state.withLock { state -> PostgresConnection? in
            state.cancelled = true
            return state.connection
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }
}
