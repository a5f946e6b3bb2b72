import Tracing

/// Where Baton's spans go: the tracer given to a ``LeaseStore``, or the one bootstrapped with
/// `InstrumentationSystem`; none when that is the no-op tracer, so that a process without tracing pays nothing.
///
/// Spans (all with `baton.key` and `baton.holder`; `baton.token` once known):
/// - `baton.acquire`, `baton.renew`, `baton.release`: one per store request of a ``LeaseStore`` (kind client),
///   with `baton.store` and, for an acquire, `baton.outcome` (`acquired` or `held`); an error is recorded on the span.
/// - `baton.term.start` and `baton.term.end`: a term of a ``LeaderElector``, as two short spans so that a tracer
///   exports the start while the term runs (a span lasting the whole term would be exported only at its end). The
///   end links to the start and carries `baton.reason` and `baton.term.duration_ms`. The term's renews and its
///   release, and the work given the term (``LeaderElector/withLeadership(_:)``), run in the start span's context:
///   their spans are its children.
struct BatonTracing: Sendable {
    let tracer: any Tracer

    /// The tracer to use: `configured`, else the bootstrapped one; nil if that is the no-op tracer.
    static func resolve(_ configured: (any Tracer)?) -> BatonTracing? {
        let tracer = configured ?? InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : BatonTracing(tracer: tracer)
    }

    /// Starts a span in `context` (the task's own by default).
    func start(_ name: String, kind: SpanKind, context: ServiceContext? = nil) -> any Span {
        tracer.startSpan(name, context: context ?? ServiceContext.current ?? .topLevel, ofKind: kind)
    }

    /// Runs `body` in a span named `name`, recording a thrown error on it.
    func withSpan<T>(
        _ name: String,
        kind: SpanKind = .client,
        attributes: SpanAttributes,
        _ body: (any Span) async throws -> T
    ) async throws -> T {
        let span = start(name, kind: kind)
        span.attributes = attributes
        defer { span.end() }
        do {
            return try await ServiceContext.$current.withValue(span.context) { try await body(span) }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }
}

extension SpanAttributes {
    /// The attributes of a request for `key` by `holder`.
    static func baton(key: String, holder: String, token: FencingToken? = nil) -> SpanAttributes {
        var attributes = SpanAttributes()
        attributes["baton.key"] = key
        attributes["baton.holder"] = holder
        if let token { attributes["baton.token"] = token }
        return attributes
    }
}
