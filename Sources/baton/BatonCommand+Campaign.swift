import ArgumentParser
@_spi(BatonStoreKit) import Baton
import CBatonProcess
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension BatonCommand {
    /// `baton campaign KEY`: campaigns for a key and holds it, printing what happens as JSON lines.
    struct Campaign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Campaign for a key and hold it until interrupted, printing each event as a JSON line.",
            discussion: """
                Waits until elected, holds the key (renewing it) and resigns on SIGTERM or SIGINT, or after \
                --for; the next candidate is woken at once. Each line is one JSON object with "event" \
                (campaigning, following, vacant, elected, demoted, store_error, stopped), details such as \
                "token", "leader" or "reason", and "monotonic_ns", this host's CLOCK_MONOTONIC, so lines \
                printed by different processes on one host can be compared. To run a command while leader, \
                use `baton run` instead. Exits 0 when stopped; 2 for an invalid argument.

                Example:
                  baton campaign jobs/mailer --id host-a --for 30s
                  {"event":"campaigning","holder":"host-a","key":"jobs/mailer","monotonic_ns":...}
                """
        )

        @OptionGroup var options: StoreOptions

        @Argument(help: "The key to lead.")
        var key: String

        @Option(help: ArgumentHelp("This candidate's identity (default: hostname:pid).", valueName: "id"))
        var id: String?

        @Option(help: ArgumentHelp("The lease time to live: 250ms, 10s, 5m.", valueName: "time"))
        var ttl: String = "10s"

        @Option(help: ArgumentHelp("What the leader publishes (at most 4 KiB), e.g. its address.", valueName: "text"))
        var metadata: String?

        @Option(
            name: .customLong("for"),
            help: ArgumentHelp(
                "Resign this long after being elected (default: hold until interrupted).", valueName: "time")
        )
        var holdFor: String?

        func run() async throws {
            try await CommandOutcome.run {
                let ttl = try parseDurationOption(ttl, option: "--ttl")
                let holdFor = try holdFor.map { try parseDurationOption($0, option: "--for") }
                try BatonValidation.name(key, "key")
                let holder = id ?? LeaderElector.defaultHolder
                try BatonValidation.name(holder, "--id")
                var logger = Logger(label: "baton.campaign")
                logger.logLevel = .warning
                let configuration = ElectorConfiguration(ttl: ttl, metadata: metadata)
                return try await options.withStore { store in
                    let elector = try LeaderElector(
                        store: store,
                        key: key,
                        holder: holder,
                        configuration: configuration,
                        logger: logger
                    )
                    let events = elector.events
                    let elections = elector.events
                    let group = ServiceGroup(
                        configuration: .init(
                            services: [.init(service: elector, successTerminationBehavior: .gracefullyShutdownGroup)],
                            gracefulShutdownSignals: [.sigterm, .sigint],
                            logger: logger
                        )
                    )
                    // Before the stop signals are taken over: until then one ends the process, which holds nothing.
                    await ElectorRehearsal.run(configuration: configuration)
                    // The service group shuts down on these signals too; resigning at once starts the handover
                    // without waiting for that.
                    let signals = StopSignals([SIGTERM, SIGINT]) { _ in elector.resign() }
                    defer { signals.cancel() }
                    Self.emit(["event": .string("campaigning"), "key": .string(key), "holder": .string(holder)])
                    try await withThrowingDiscardingTaskGroup { tasks in
                        tasks.addTask {
                            for await event in events { Self.report(event, holder: holder) }
                        }
                        if let holdFor {
                            tasks.addTask {
                                for await event in elections {
                                    guard case .elected = event else { continue }
                                    try await Task.sleep(for: holdFor)
                                    elector.resign()
                                    return
                                }
                            }
                        }
                        try await group.run()
                        tasks.cancelAll()
                    }
                    // Released: the rest of this process runs at the lowest CPU priority, so that it does not slow
                    // down the next leader on this host.
                    _ = baton_lower_priority(19)
                    Self.emit(["event": .string("stopped")])
                    return CommandOutcome.success
                }
            }
        }

        private static func report(_ event: ElectorEvent, holder: String) {
            switch event {
            case .elected(let lease):
                emit(["event": .string("elected"), "token": .integer(lease.token)])
            case .demoted(let lease, let reason):
                emit([
                    "event": .string("demoted"), "token": .integer(lease.token),
                    "reason": .string(reason.description),
                ])
            case .leaderChanged(let info):
                if let info {
                    if info.holder != holder {
                        emit([
                            "event": .string("following"), "leader": .string(info.holder),
                            "token": .integer(info.token),
                        ])
                    }
                } else {
                    emit(["event": .string("vacant")])
                }
            case .storeError(let error):
                emit(["event": .string("store_error"), "error": .string(error.message)])
            case .renewed:
                // Renewals are routine: `baton campaign` reports changes of role and of leader only.
                break
            }
        }

        /// Writes one JSON line with the monotonic time, unbuffered (standard output may be a pipe).
        static func emit(_ fields: [String: JSONLine.Value]) {
            var line = JSONLine(fields: fields)
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            line.fields["monotonic_ns"] = .integer(Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))
            FileHandle.standardOutput.write(Data(line.text.utf8))
        }
    }
}
