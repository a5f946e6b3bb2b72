import Hummingbird
import Logging
import Prometheus
import Synchronization

/// The service's own metrics, kept in a Prometheus registry:
///
/// - `baton_http_requests_total` (counter; labels `route`, `method`, `status`): answered requests.
/// - `baton_http_request_duration_seconds` (histogram; labels `route`, `method`, `status`): time from the
///   request head to the response head (for Server-Sent Events, until the stream starts).
///
/// `route` is the route's template (`/api/v1/elect/{system}/{round}`), never the raw path, so the number of series
/// stays small; requests that match no route are counted under `unmatched`.
final class HTTPMetrics: Sendable {
    private struct SeriesKey: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    private struct Series {
        var requests: Prometheus.Counter
        var duration: DurationHistogram
    }

    /// The histogram's buckets: 0.5 ms to 60 s.
    static let buckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    let registry: PrometheusCollectorRegistry
    private let series = Mutex<[SeriesKey: Series]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Counts one answered request.
    func record(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status, duration: Duration) {
        let key = SeriesKey(route: route, method: method.rawValue, status: status.code)
        let found = series.withLock { $0[key] }
        let entry = found ?? makeSeries(key)
        entry.requests.increment()
        entry.duration.record(duration)
    }

    private func makeSeries(_ key: SeriesKey) -> Series {
        let labels = [("route", key.route), ("method", key.method), ("status", String(key.status))]
        let requests = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "baton", subsystem: "http", metricName: "requests", unitName: "total",
                helpText: "HTTP requests answered, by route template, method and status."),
            labels: labels
        )
        let duration = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                namespace: "baton", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                helpText: "Time from request head to response head, by route template, method and status."),
            labels: labels,
            buckets: Self.buckets
        )
        let entry = Series(requests: requests, duration: duration)
        series.withLock { $0[key] = entry }
        return entry
    }
}

/// The outermost middleware: turns every error into its JSON answer and counts every answer in ``HTTPMetrics``.
/// A `5xx` answer carries a `request_id`; the warning logged with the same id has the detail the answer leaves out.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = BatonRequestContext

    let metrics: HTTPMetrics
    let logger: Logger

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // The work around `next` is in plain functions: this frame stays in the task of every connection (a
        // long stream's too) for as long as the connection lives, so it holds little more than the response.
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = failed(error, request: request, context: context)
        }
        record(response.status, request: request, context: context, since: start)
        return response
    }

    /// The answer to a request whose handling threw `error`; a `5xx` is logged with its `request_id`.
    @inline(never)
    private func failed(_ error: any Error, request: Request, context: Context) -> Response {
        var answer = Self.answer(for: error, request: request)
        if answer.status.code >= 500 {
            let (identified, id) = answer.identified()
            answer = identified
            logger.warning(
                "request failed",
                metadata: [
                    "method": "\(request.method)", "route": "\(context.endpointPath ?? "unmatched")",
                    "status": "\(answer.status.code)", "request_id": "\(id)",
                    "error": "\(answer.logDetail ?? answer.message)",
                ])
        }
        return answer.response
    }

    @inline(never)
    private func record(
        _ status: HTTPResponse.Status, request: Request, context: Context, since start: ContinuousClock.Instant
    ) {
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        metrics.record(route: route, method: request.method, status: status, duration: .now - start)
    }

    /// The JSON answer for an error thrown by a handler, the router or another middleware. A `5xx` gets a
    /// `request_id` that the log line with its detail also carries.
    static func answer(for error: any Error, request: Request) -> APIError {
        if let error = error as? APIError { return error }
        if let error = error as? HTTPError {
            if error.status == .notFound {
                return APIError.notFound("no route for \(request.method) \(request.uri.path)")
            }
            let message = error.body ?? error.status.reasonPhrase
            return APIError(status: error.status, code: "http_\(error.status.code)", message: message)
        }
        return APIError.from(error)
    }
}
