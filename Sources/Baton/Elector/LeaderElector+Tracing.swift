import Synchronization
import Tracing

extension LeaderElector {
    // MARK: Traces of terms

    /// A term's start span, kept until the term's end span links to it.
    struct TermTrace {
        var context: ServiceContext
        var started: ContinuousClock.Instant
    }

    /// Records the start of the term of `lease`: a short `baton.term.start` span (see ``BatonTracing``).
    func traceTermStart(_ lease: Lease) {
        guard let tracing = store.core.tracing else { return }
        let span = tracing.start("baton.term.start", kind: .internal, context: .topLevel)
        var attributes = SpanAttributes.baton(key: key, holder: holder, token: lease.token)
        attributes["baton.ttl_ms"] = Int(lease.ttl.batonNanoseconds / 1_000_000)
        span.attributes = attributes
        span.end()
        let trace = TermTrace(context: span.context, started: .now)
        shared.withLock { shared in
            // Earlier terms' traces are done with: their ends were recorded.
            shared.termTraces = shared.termTraces.filter { $0.key >= lease.token }
            shared.termTraces[lease.token] = trace
        }
    }

    /// Records the end of the term of `lease`: a short `baton.term.end` span linked to its start.
    func traceTermEnd(_ lease: Lease, _ reason: DemotionReason) {
        guard let tracing = store.core.tracing, let trace = termTrace(of: lease.token) else { return }
        let span = tracing.start("baton.term.end", kind: .internal, context: trace.context)
        var attributes = SpanAttributes.baton(key: key, holder: holder, token: lease.token)
        attributes["baton.reason"] = "\(reason)"
        let lasted = ContinuousClock.now - trace.started
        attributes["baton.term.duration_ms"] = Int(lasted.batonNanoseconds / 1_000_000)
        span.attributes = attributes
        span.addLink(SpanLink(context: trace.context, attributes: [:]))
        span.end()
    }

    /// The trace of the term `token`, if it was traced.
    func termTrace(of token: FencingToken) -> TermTrace? {
        shared.withLock { $0.termTraces[token] }
    }

    /// Runs `body` in the context of the term `token`'s start span (if traced), so that the spans it makes (a
    /// renew's, a release's, the work's) are that span's children.
    func inTermContext<T>(_ token: FencingToken, _ body: () async throws -> T) async rethrows -> T {
        // Without a tracer, not even the lock of the terms' traces.
        guard store.core.tracing != nil, let trace = termTrace(of: token) else { return try await body() }
        return try await ServiceContext.$current.withValue(trace.context) { try await body() }
    }
}
