import AsyncHTTPClient
import Baton
import Synchronization

/// The HTTP client of an ``S3LeaseStore`` while it runs: none before its `run()` begins, the client that
/// `run()` made while it runs, and none again once it has ended.
///
/// A request made before `run()` has begun waits for it (as long as the caller's task is not cancelled; the
/// ``Baton/LeaseStore`` front bounds it); a request made after `run()` ended fails with
/// ``Baton/BatonError/Code/storeUnavailable``.
final class S3Session: Sendable {
    private enum Phase {
        /// `run()` has not begun; the continuations of requests waiting for it, by ticket.
        case before(waiting: [Int: CheckedContinuation<HTTPClient, any Error>], tickets: Int)
        case running(HTTPClient)
        case ended
    }

    private let phase = Mutex(Phase.before(waiting: [:], tickets: 0))
    /// How the store is named in errors.
    private let name: String

    init(name: String) {
        self.name = name
    }

    /// The running store's HTTP client; waits for `run()` to begin.
    /// - Throws: ``Baton/BatonError/Code/storeUnavailable`` once `run()` has ended; `CancellationError` if the
    ///   caller is cancelled while waiting.
    func client() async throws -> HTTPClient {
        enum Now {
            case client(HTTPClient)
            case ended
            case wait(ticket: Int)
        }
        let now = phase.withLock { phase -> Now in
            switch phase {
            case .running(let http): return .client(http)
            case .ended: return .ended
            case .before(let waiting, let tickets):
                phase = .before(waiting: waiting, tickets: tickets + 1)
                return .wait(ticket: tickets)
            }
        }
        switch now {
        case .client(let http): return http
        case .ended: throw endedError
        case .wait(let ticket): return try await waitForStart(ticket: ticket)
        }
    }

    private func waitForStart(ticket: Int) async throws -> HTTPClient {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPClient, any Error>) in
                let ready = phase.withLock { phase -> Result<HTTPClient, any Error>? in
                    guard case .before(var waiting, let tickets) = phase else {
                        if case .running(let http) = phase { return .success(http) }
                        return .failure(endedError)
                    }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    waiting[ticket] = continuation
                    phase = .before(waiting: waiting, tickets: tickets)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let cancelled = phase.withLock { phase -> CheckedContinuation<HTTPClient, any Error>? in
                guard case .before(var waiting, let tickets) = phase else { return nil }
                defer { phase = .before(waiting: waiting, tickets: tickets) }
                return waiting.removeValue(forKey: ticket)
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// Whether `run()` has ended.
    var hasEnded: Bool {
        phase.withLock { if case .ended = $0 { true } else { false } }
    }

    /// `run()` has begun with `http`: hands it to the waiting requests.
    func start(_ http: HTTPClient) {
        let waiting = phase.withLock { phase -> [CheckedContinuation<HTTPClient, any Error>] in
            guard case .before(let waiting, _) = phase else { return [] }
            phase = .running(http)
            return Array(waiting.values)
        }
        for continuation in waiting { continuation.resume(returning: http) }
    }

    /// `run()` is ending: later requests fail, and so do requests still waiting.
    func end() {
        let waiting = phase.withLock { phase -> [CheckedContinuation<HTTPClient, any Error>] in
            defer { phase = .ended }
            if case .before(let waiting, _) = phase { return Array(waiting.values) }
            return []
        }
        for continuation in waiting { continuation.resume(throwing: endedError) }
    }

    var endedError: BatonError {
        .storeUnavailable("\(name) is closed (the store's run() has returned)")
    }
}
