import Synchronization

/// The end, before its answer, of the store request running in the current task: its deadline passed, or its
/// caller was cancelled. For drivers that declare ``LeaseStoreDriver/honoursRequestAbort``: the front then runs
/// their requests in the caller's own task, and each wait of such a request registers with ``current`` to be ended
/// when the request is.
@_spi(BatonStoreKit) public final class RequestAbort: Sendable {
    /// The abort of the store request that the current task runs, if the front runs one here.
    @TaskLocal public static var current: RequestAbort?

    private struct State {
        var reason: (any Error)?
        /// The handlers of the waits under way: most requests wait for one thing at a time, so the first is kept
        /// apart from the others.
        var first: (id: UInt64, handler: @Sendable (any Error) -> Void)?
        var others: [(id: UInt64, handler: @Sendable (any Error) -> Void)] = []
        var next: UInt64 = 0
    }

    private let state = Mutex(State())

    /// When the request's deadline passes, on the host's continuous clock (nil when the front's clock is another,
    /// such as a test's): a driver may give it to a request of its own (a gRPC call's timeout), which then ends by
    /// itself at the deadline.
    public let deadline: ContinuousClock.Instant?

    init(deadline: ContinuousClock.Instant? = nil) {
        self.deadline = deadline
    }

    /// Why the request was aborted (a `timeout` ``BatonError``, or `CancellationError`), once it was.
    public var reason: (any Error)? { state.withLock { $0.reason } }

    /// Runs `operation`, calling `onAbort` with the reason if the current request is aborted meanwhile (at once if
    /// it already was). `onAbort` must make `operation` end soon, for example by failing the promise it waits for.
    /// Outside a request run by the front, just runs `operation`.
    public static func whileWaiting<T>(
        _ operation: () async throws -> T,
        onAbort: @escaping @Sendable (any Error) -> Void
    ) async throws -> T {
        guard let abort = current else { return try await operation() }
        let id = abort.register(onAbort)
        defer { if let id { abort.unregister(id) } }
        return try await operation()
    }

    /// Aborts the request with `reason`: every registered handler is called once. Only the first call counts.
    func abort(_ reason: any Error) {
        let handlers = state.withLock { state -> [@Sendable (any Error) -> Void] in
            guard state.reason == nil else { return [] }
            state.reason = reason
            defer {
                state.first = nil
                state.others = []
            }
            return (state.first.map { [$0.handler] } ?? []) + state.others.map(\.handler)
        }
        for handler in handlers { handler(reason) }
    }

    /// Registers `handler`; nil if the request was aborted already, in which case `handler` has been called.
    private func register(_ handler: @escaping @Sendable (any Error) -> Void) -> UInt64? {
        let registered = state.withLock { state -> (id: UInt64?, reason: (any Error)?) in
            if let reason = state.reason { return (nil, reason) }
            let id = state.next
            state.next += 1
            if state.first == nil {
                state.first = (id, handler)
            } else {
                state.others.append((id, handler))
            }
            return (id, nil)
        }
        if let reason = registered.reason { handler(reason) }
        return registered.id
    }

    private func unregister(_ id: UInt64) {
        state.withLock { state in
            if state.first?.id == id {
                state.first = nil
            } else {
                state.others.removeAll { $0.id == id }
            }
        }
    }
}
