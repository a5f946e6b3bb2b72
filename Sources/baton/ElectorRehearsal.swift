@_spi(BatonStoreKit) import Baton
import Logging

/// One term led and resigned on a store in memory, before a `baton` command (`run`, `campaign`) campaigns on its own store.
///
/// The Swift runtime builds a generic type's metadata, and looks up the conformances it needs, the first time a
/// process uses the type: tens of microseconds each in a binary of this size, as each lookup searches every
/// conformance the binary declares. A candidate that waited would do all of that for its election, its term's work
/// and its release on the handover's path. The rehearsal takes the elector through the same steps while the store
/// connects. Nothing of it leaves the process: the store is in memory, the logger silent, and those commands set up no
/// metrics or tracing backend.
enum ElectorRehearsal {
    /// Rehearses a term with `configuration` (the one the real electors use); returns once it is released, or
    /// after `limit` at the latest (it never holds up the real campaign for longer).
    static func run(configuration: ElectorConfiguration, limit: Duration = .seconds(1)) async {
        var logger = Logger(label: "baton.run.rehearsal")
        logger.logLevel = .critical
        guard
            let elector = try? LeaderElector(
                store: LeaseStore(MemoryLeaseStore()), key: "rehearsal", holder: "rehearsal",
                configuration: configuration, logger: logger),
            let campaign = elector.claimCampaign()
        else { return }
        let events = elector.events
        let follower = Task {
            for await _ in events {}
        }
        defer { follower.cancel() }
        let running = Task { await elector.run(campaign) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    _ = try? await elector.withLeadershipOfRun { _ in RunStateMachine.CampaignEnd.notStarted }
                    elector.resign()
                    await running.value
                } onCancel: {
                    elector.resign()
                    running.cancel()
                }
            }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }
}
