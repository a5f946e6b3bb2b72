import CoreMetrics
import Metrics

/// The metrics one elector reports, all with the dimension `key`.
///
/// - `baton_is_leader` (gauge): 1 while this elector leads the key, else 0.
/// - `baton_elections_total` (counter): terms this elector won.
/// - `baton_demotions_total` (counter, dimension `reason`: lost, deadline_reached, resigned).
/// - `baton_renew_failures_total` (counter): renews that failed or timed out (the leader keeps leading until
///   its deadline).
/// - `baton_store_errors_total` (counter): failed store calls of any kind.
/// - `baton_acquire_duration_seconds` (timer): time from sending an acquire to its answer.
/// - `baton_release_skipped_total` (counter): terms not released because their work was still running at the
///   term's deadline (the store's ttl freed the key).
struct ElectorMetrics: Sendable {
    let isLeader: Gauge
    let elections: Counter
    let renewFailures: Counter
    let storeErrors: Counter
    let acquireDuration: Metrics.Timer
    let releaseSkipped: Counter
    private let key: String

    init(key: String) {
        self.key = key
        let dimensions = [("key", key)]
        isLeader = Gauge(label: "baton_is_leader", dimensions: dimensions)
        elections = Counter(label: "baton_elections_total", dimensions: dimensions)
        renewFailures = Counter(label: "baton_renew_failures_total", dimensions: dimensions)
        storeErrors = Counter(label: "baton_store_errors_total", dimensions: dimensions)
        acquireDuration = Metrics.Timer(label: "baton_acquire_duration_seconds", dimensions: dimensions)
        releaseSkipped = Counter(label: "baton_release_skipped_total", dimensions: dimensions)
    }

    func demoted(_ reason: DemotionReason) {
        Counter(label: "baton_demotions_total", dimensions: [("key", key), ("reason", reason.description)]).increment()
    }
}
