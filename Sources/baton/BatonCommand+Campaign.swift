import ArgumentParser
@_spi(BatonStoreKit) import Baton
import CBatonProcess
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
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
                use `baton run` instead. Exits 0 when stopped; 2 for an invalid argument; 74 when standard \
                output is closed (its reader went away), after resigning.

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
                    // A second subscriber only for --for: each subscriber costs every event a yield.
                    let elections = holdFor.map { _ in elector.events }
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
                    StandardOutput.failWritesToClosedPipes()
                    let output = EventOutput(elector)
                    output.emit(["event": .string("campaigning"), "key": .string(key), "holder": .string(holder)])
                    try await withThrowingDiscardingTaskGroup { tasks in
                        tasks.addTask {
                            for await event in events {
                                if let fields = Self.report(event, holder: holder) { output.emit(fields) }
                            }
                        }
                        if let holdFor, let elections {
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
                    if !output.closed { output.emit(["event": .string("stopped")]) }
                    return output.closed ? CommandOutcome.outputClosed : CommandOutcome.success
                }
            }
        }

        /// The line an event prints, if any.
        private static func report(_ event: ElectorEvent, holder: String) -> [String: JSONLine.Value]? {
            switch event {
            case .elected(let lease):
                return ["event": .string("elected"), "token": .integer(lease.token)]
            case .demoted(let lease, let reason):
                return [
                    "event": .string("demoted"), "token": .integer(lease.token),
                    "reason": .string(reason.description),
                ]
            case .leaderChanged(let info):
                guard let info else { return ["event": .string("vacant")] }
                guard info.holder != holder else { return nil }
                return ["event": .string("following"), "leader": .string(info.holder), "token": .integer(info.token)]
            case .storeError(let error):
                return ["event": .string("store_error"), "error": .string(error.message)]
            case .renewed:
                // Renewals are routine: `baton campaign` reports changes of role and of leader only.
                return nil
            }
        }

        /// Where the events go: a reader that went away stops the campaign as a stop signal would.
        final class EventOutput: Sendable {
            private let elector: LeaderElector
            private let isClosed = Atomic(false)

            init(_ elector: LeaderElector) { self.elector = elector }

            /// Whether standard output was found closed.
            var closed: Bool { isClosed.load(ordering: .relaxed) }

            /// Writes an event's line; the first write that fails says why the campaign stops, and resigns.
            func emit(_ fields: [String: JSONLine.Value]) {
                guard !Campaign.emit(fields), !isClosed.exchange(true, ordering: .relaxed) else { return }
                CommandOutcome.printError(StandardOutput.closedMessage)
                elector.resign()
            }
        }

        /// Writes one JSON line with the monotonic time, unbuffered (standard output may be a pipe); false when
        /// standard output is closed.
        static func emit(_ fields: [String: JSONLine.Value]) -> Bool {
            var line = JSONLine(fields: fields)
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            line.fields["monotonic_ns"] = .integer(Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))
            return StandardOutput.write(line.text)
        }
    }
}
