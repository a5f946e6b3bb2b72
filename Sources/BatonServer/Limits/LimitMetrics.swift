import Prometheus

/// A cap of ``BatonHTTPServer/Configuration-swift.struct/Limits``, as named in answers and metrics.
enum LimitName: String, Sendable, CaseIterable {
    case connections
    case streams
    case streamsPerKey = "streams_per_key"
    case longPolls = "long_polls"
    case longPollsPerKey = "long_polls_per_key"

    /// Whether the cap is per key (answered `429`) rather than global (`503`).
    var isPerKey: Bool { self == .streamsPerKey || self == .longPollsPerKey }
}

/// The metrics of the service's limits, kept in its Prometheus registry:
///
/// - `baton_http_rejected_total` (counter; label `limit`: `connections`, `streams`, `streams_per_key`,
///   `long_polls`, `long_polls_per_key`): requests refused over a cap.
/// - `baton_http_write_timeouts_total` (counter): connections closed because their client stopped reading.
/// - `baton_http_open_connections`, `baton_http_open_streams`, `baton_http_waiting_long_polls` (gauges): what is
///   held now.
final class LimitMetrics: Sendable {
    private let rejections: [LimitName: Counter]
    let writeTimeouts: Counter
    let openConnections: Gauge
    let openStreams: Gauge
    let waitingLongPolls: Gauge

    init(registry: PrometheusCollectorRegistry) {
        var rejections: [LimitName: Counter] = [:]
        for limit in LimitName.allCases {
            rejections[limit] = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "baton", subsystem: "http", metricName: "rejected", unitName: "total",
                    helpText: "Requests refused over a limit of the service, by limit."),
                labels: [("limit", limit.rawValue)]
            )
        }
        self.rejections = rejections
        writeTimeouts = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "baton", subsystem: "http", metricName: "write_timeouts", unitName: "total",
                helpText: "Connections closed because their client stopped reading for the write timeout."))
        openConnections = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "baton", subsystem: "http", metricName: "open_connections", unitName: "",
                helpText: "Connections open now."))
        openStreams = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "baton", subsystem: "http", metricName: "open_streams", unitName: "",
                helpText: "Server-Sent Events streams open now."))
        waitingLongPolls = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "baton", subsystem: "http", metricName: "waiting_long_polls", unitName: "",
                helpText: "Long polls waiting now."))
    }

    /// Counts one refusal over `limit`.
    func rejected(_ limit: LimitName) {
        rejections[limit]?.increment()
    }
}
