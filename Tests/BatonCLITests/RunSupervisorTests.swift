import Baton
import Foundation
import Synchronization
import Testing

@testable import baton

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The launch of `baton run`'s command and its watchdog's kill times, decided by the supervisor.
@Suite("baton run: the launch and the watchdog's kill times")
struct RunSupervisorTests {
    static let lease = Lease(key: "k", holder: "A", token: 3, ttl: .seconds(10))

    /// The time the elector has left until the deadline of `lease`'s term (nil: not leading), set by the test.
    final class TimeLeft: Sendable {
        private let value: Mutex<Duration?>
        init(_ value: Duration?) { self.value = Mutex(value) }
        func set(_ left: Duration?) { value.withLock { $0 = left } }
        func get() -> Duration? { value.withLock { $0 } }
    }

    static func supervisor(left: TimeLeft) -> RunSupervisor {
        RunSupervisor(grace: .seconds(1), timeLeft: { token in token == lease.token ? left.get() : nil })
    }

    static func prepare() async throws -> ChildProcess {
        try await ChildProcess.prepare(["sleep", "30"], environment: ["PATH": "/usr/bin:/bin"])
    }

    @Test("no launch once the term's demotion was seen, nor when the elector no longer leads or is past its deadline")
    func noLaunchForATermThatIsOver() async throws {
        let left = TimeLeft(.seconds(5))
        for end in ["demoted", "not leading", "past the deadline"] {
            let supervisor = Self.supervisor(left: left)
            let child = try await Self.prepare()
            defer { child.abandon() }
            switch end {
            case "demoted":
                left.set(.seconds(5))
                supervisor.demoted(Self.lease, DemotionReason.deadlineReached)
            case "not leading": left.set(nil)
            default: left.set(.zero)
            }
            supervisor.elected(Self.lease)
            guard case .termOver = supervisor.launch(child, for: Self.lease, entries: []) else {
                Issue.record("launched for a term that is over (\(end))")
                continue
            }
            // Nothing but the keeper (named once forked) in the group: the command was not started.
            #expect(
                await ChildProcessTests.waitUntil(.seconds(5)) {
                    ChildProcessTests.commandNames(inGroup: child.pid) == ["baton keeper"]
                }, "\(end)")
        }
    }

    /// After a deadline demotion the elector can take its own term again (same token: the store kept it, e.g. across
    /// a restart of the store). The old demotion must not refuse every launch in it, or the candidate would hold the
    /// key and never run the command.
    @Test("a term held again after its demotion is launched and its kill time moves on")
    func aTermHeldAgainIsLaunched() async throws {
        let left = TimeLeft(.seconds(5))
        let supervisor = Self.supervisor(left: left)
        let child = try await Self.prepare()
        supervisor.demoted(Self.lease, DemotionReason.deadlineReached)
        supervisor.electionReported(Self.lease)
        supervisor.elected(Self.lease)
        guard case .sent(let written) = supervisor.launch(child, for: Self.lease, entries: []) else {
            Issue.record("no launch in the term held again")
            child.abandon()
            return
        }
        #expect(try await child.launchOutcome(written: written) == .running)
        supervisor.started(child)
        let first = try #require(child.keeperKillAt)
        left.set(.seconds(8))
        supervisor.renewed(Self.lease)
        #expect(try #require(child.keeperKillAt) > first + .seconds(2), "the renewal did not move the kill time on")
        child.stop(SIGTERM, grace: .seconds(1))
        _ = await child.exitWithGroup(grace: .seconds(1))
    }

    @Test("the launch carries the kill time (deadline + grace) and each renewal moves it on")
    func killTimesFollowTheTerm() async throws {
        let left = TimeLeft(.seconds(5))
        let supervisor = Self.supervisor(left: left)
        let child = try await Self.prepare()
        supervisor.elected(Self.lease)
        let before = BootTime.now
        guard case .sent(let written) = supervisor.launch(child, for: Self.lease, entries: []) else {
            Issue.record("not launched")
            return
        }
        let after = BootTime.now
        #expect(try await child.launchOutcome(written: written) == .running)
        supervisor.started(child)
        let first = try #require(child.keeperKillAt)
        #expect(first >= before + .seconds(6) && first <= after + .seconds(6))

        left.set(.seconds(8))
        supervisor.renewed(Self.lease)
        let second = try #require(child.keeperKillAt)
        #expect(second > first + .seconds(2), "the renewal did not move the kill time on")
        // Another term's renewal, or one after the term's demotion, sends nothing.
        left.set(.seconds(20))
        supervisor.renewed(Lease(key: "k", holder: "A", token: 4, ttl: .seconds(10)))
        #expect(child.keeperKillAt == second)
        supervisor.demoted(Self.lease, DemotionReason.lost)
        supervisor.renewed(Self.lease)
        #expect(child.keeperKillAt == second)
        // The demotion stopped the command.
        let exit = await child.exitWithGroup(grace: .seconds(1))
        #expect(exit.signal == SIGTERM)
    }
}
