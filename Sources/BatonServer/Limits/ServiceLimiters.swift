import Prometheus

/// The counters behind ``BatonHTTPServer/Configuration-swift.struct/Limits``, shared by every connection and
/// request of one ``BatonHTTPServer``.
final class ServiceLimiters: Sendable {
    let metrics: LimitMetrics
    let connections: ConnectionSlots
    let streams: ActivityLimiter
    let longPolls: ActivityLimiter

    init(_ limits: BatonHTTPServer.Configuration.Limits, registry: PrometheusCollectorRegistry) {
        let metrics = LimitMetrics(registry: registry)
        self.metrics = metrics
        connections = ConnectionSlots(capacity: limits.maxConnections, metrics: metrics)
        streams = ActivityLimiter(
            what: "event streams", global: (.streams, limits.maxStreams),
            perKey: (.streamsPerKey, limits.maxStreamsPerKey), metrics: metrics, gauge: metrics.openStreams)
        longPolls = ActivityLimiter(
            what: "long polls", global: (.longPolls, limits.maxLongPolls),
            perKey: (.longPollsPerKey, limits.maxLongPollsPerKey), metrics: metrics, gauge: metrics.waitingLongPolls)
    }
}
