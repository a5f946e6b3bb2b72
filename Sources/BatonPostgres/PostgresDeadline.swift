@_spi(BatonStoreKit) import Baton

/// A deadline on the store's clock for work that gives up when its task is cancelled.
///
/// A PostgreSQL query cannot be cancelled, but closing its connection fails it: work run under a deadline
/// closes its connection when cancelled (see ``PostgresLeaseStore/onConnection(_:_:_:)`` and the change
/// listener's keep-alive check), so cancelling it at the deadline ends it at once.
enum PostgresDeadline {
    /// Thrown when the deadline passed first.
    struct Passed: Error {}

    private enum Outcome<T: Sendable>: Sendable {
        case done(T)
        case passed
    }

    /// Runs `body`; if `limit` passes on `clock` first, cancels it, waits for it to end and throws ``Passed``.
    static func run<T: Sendable>(
        _ limit: Duration,
        clock: BatonClock,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let outcome = try await withThrowingTaskGroup(of: Outcome<T>.self) { group in
            group.addTask { .done(try await body()) }
            group.addTask {
                try await clock.sleep(for: limit)
                return .passed
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        switch outcome {
        case .done(let value): return value
        case .passed: throw Passed()
        }
    }
}
