import HTTPTypes
import Prometheus
import Synchronization

/// Counts one kind of long-lived request (event streams, or waiting long polls), in all and per key, and refuses
/// one over either cap with the answer ``APIError/overLimit(_:retryAfter:message:)`` describes.
final class ActivityLimiter: Sendable {
    private struct State {
        var total = 0
        var perKey: [String: Int] = [:]
    }

    /// What is counted, in messages: "event streams", "long polls".
    let what: String
    private let global: (limit: LimitName, cap: Int)
    private let perKey: (limit: LimitName, cap: Int)
    private let metrics: LimitMetrics
    private let gauge: Gauge
    private let state = Mutex(State())

    init(what: String, global: (LimitName, Int), perKey: (LimitName, Int), metrics: LimitMetrics, gauge: Gauge) {
        self.what = what
        self.global = (global.0, max(1, global.1))
        self.perKey = (perKey.0, max(1, perKey.1))
        self.metrics = metrics
        self.gauge = gauge
    }

    /// Takes a slot for one request on `key`, held until the permit is released (or dropped).
    /// - Throws: ``APIError`` `429` over the per-key cap, `503` over the global cap, each counted.
    func admit(key: String) throws(APIError) -> ActivityPermit {
        let refused = state.withLock { state -> LimitName? in
            if state.total >= global.cap { return global.limit }
            if state.perKey[key, default: 0] >= perKey.cap { return perKey.limit }
            state.total += 1
            state.perKey[key, default: 0] += 1
            return nil
        }
        if let refused {
            metrics.rejected(refused)
            if refused.isPerKey {
                throw .overLimit(
                    refused, retryAfter: BatonHTTPServer.Configuration.Limits.retryAfterPerKey,
                    message: "too many \(what) for \(key): at most \(perKey.cap) at once; retry later")
            }
            throw .overLimit(
                refused, retryAfter: BatonHTTPServer.Configuration.Limits.retryAfterGlobal,
                message: "the service has too many \(what): at most \(global.cap) at once; retry later")
        }
        gauge.increment()
        return ActivityPermit { [self] in release(key) }
    }

    /// How many slots are held, in all and for `key`.
    func count(key: String) -> (total: Int, key: Int) {
        state.withLock { ($0.total, $0.perKey[key, default: 0]) }
    }

    private func release(_ key: String) {
        state.withLock { state in
            state.total -= 1
            let left = state.perKey[key, default: 1] - 1
            state.perKey[key] = left > 0 ? left : nil
        }
        gauge.decrement()
    }
}

/// A slot of an ``ActivityLimiter``: released once, by ``release()`` or else when the permit is dropped (so a
/// response body that never runs does not keep its slot).
final class ActivityPermit: Sendable {
    private let released = Atomic(false)
    private let onRelease: @Sendable () -> Void

    init(_ onRelease: @escaping @Sendable () -> Void) {
        self.onRelease = onRelease
    }

    /// Gives the slot back; later calls do nothing.
    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { onRelease() }
    }

    deinit {
        release()
    }
}

extension APIError {
    /// `429` (per-key cap) or `503` (global cap) with `Retry-After` in whole seconds and
    /// `{"error", "code": "over_limit", "limit", "retry_after_s"}`.
    static func overLimit(_ limit: LimitName, retryAfter: Duration, message: String) -> APIError {
        let seconds = max(1, retryAfter.components.seconds)
        return APIError(
            status: limit.isPerKey ? .tooManyRequests : .serviceUnavailable,
            code: "over_limit",
            message: message,
            details: [("limit", .string(limit.rawValue)), ("retry_after_s", .integer(seconds))],
            headers: [.retryAfter: String(seconds)]
        )
    }
}
