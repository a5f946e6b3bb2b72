@_spi(BatonStoreKit) import Baton
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension BatonCommand.Run {
    /// `--shards M`: takes part as a member of KEY's M shards (see ``ShardedElector``) and runs one command per shard
    /// owned, each as a single key's command is run (``leadInCampaign(_:holder:supervisor:reporter:variables:campaign:)``):
    /// launched only in a live term, watched by its keeper, stopped before the shard can pass on. A shard moving away
    /// has its command stopped as on SIGTERM, then is released to its new owner.
    func runShards(store: LeaseStore, holder: String, timing: RunTiming, shards: Int) async throws -> Int32 {
        let (configuration, logger) = electorSettings(timing)
        let member = try ShardedElector(
            store: store, key: key, holder: holder, shards: shards, configuration: configuration, logger: logger)
        let supervisors = ShardSupervisors()
        let signals = StopSignals { signal in
            supervisors.received(signal)
            member.stop()
        }
        defer { signals.cancel() }
        let jobControl = StopSignals(StopSignals.jobControl) { supervisors.jobControl($0) }
        defer { jobControl.cancel() }
        let memberReporter = StatusReporter(key: key, holder: holder, command: commandName, quiet: quiet)
        memberReporter.status("waiting: for shards of \(key) (\(shards) shards)")
        do {
            let end: @Sendable (Int) -> Void = { supervisors.end($0) }
            try await member.participate(end: end) { shard, elector, campaign in
                let reporter = StatusReporter(
                    key: elector.key, holder: holder, command: commandName, quiet: quiet)
                let supervisor = RunSupervisor(
                    grace: timing.grace, resignOnLoss: !retry, retry: retry, resign: { elector.resign() },
                    timeLeft: { token in elector.timeLeft(in: token) }, reporter: reporter, stopsSelf: false)
                supervisors.add(shard, supervisor)
                let status: Int32
                do {
                    status = try await leadInCampaign(
                        elector, holder: holder, supervisor: supervisor, reporter: reporter,
                        variables: ["BATON_SHARD": String(shard)]
                    ) {
                        await elector.run(campaign)
                    }
                } catch {
                    _ = supervisors.remove(shard)
                    throw error
                }
                if supervisors.remove(shard) {
                    // Moved away, or the member stops: its command was stopped and the shard released.
                    if supervisors.stopSignal == nil && supervisors.status == nil {
                        reporter.status("moved: \(elector.key) to another member; \(commandName) stopped")
                    }
                } else {
                    // The command ended by itself, or the term was lost (without --retry): the member ends.
                    supervisors.finished(shard, status: status)
                    member.stop()
                }
            }
        } catch is CancellationError where supervisors.stopSignal != nil {
            // A stop signal came while the announcement retried a store that could not be reached.
        }
        if let status = supervisors.status { return status }
        return 128 + (supervisors.stopSignal ?? SIGTERM)
    }
}
