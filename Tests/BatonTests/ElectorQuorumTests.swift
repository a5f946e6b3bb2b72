import Testing

@testable import Baton

/// Quorum mode of the elector's state machine, input by input with explicit times.
@Suite struct ElectorQuorumTests {
    typealias Machine = ElectorStateMachine
    typealias Action = ElectorStateMachine.Action

    static let ttl: Duration = .seconds(9)
    static let renewInterval: Duration = ttl / 3

    func makeMachine(quorum: Int = 2) -> Machine {
        Machine(settings: .init(ElectorConfiguration(ttl: Self.ttl, quorum: quorum)), seed: 1)
    }

    func acquireID(_ actions: [Action]) -> Machine.RequestID? {
        for case .acquire(let id) in actions { return id }
        return nil
    }

    func presenceID(_ actions: [Action]) -> Machine.RequestID? {
        for case .checkPresence(let id) in actions { return id }
        return nil
    }

    func releases(_ actions: [Action]) -> [Lease] {
        actions.compactMap { if case .release(let release) = $0 { release.lease } else { nil } }
    }

    func demotion(_ actions: [Action]) -> DemotionReason? {
        for case .demoted(_, let reason) in actions { return reason }
        return nil
    }

    let lease = Lease(key: "k", holder: "me", token: 3, ttl: ElectorQuorumTests.ttl)

    /// Starts the machine, counts `alive` members at 10 ms, answers the acquire it then sends, at 20 ms.
    func electWithQuorum(_ machine: inout Machine, alive: Int = 2) throws -> [Action] {
        let check = try #require(presenceID(machine.start(now: .zero)))
        let id = try #require(acquireID(machine.handle(.presence(check, alive: alive), now: .milliseconds(10))))
        return machine.handle(.acquired(id, lease), now: .milliseconds(20))
    }

    @Test func campaignsOnlyOnceAQuorumIsCounted() throws {
        var machine = makeMachine(quorum: 3)
        let start = machine.start(now: .zero)
        #expect(acquireID(start) == nil)
        let check = try #require(presenceID(start))
        // Two of three: no campaign; the next check comes a renew interval after this one was sent.
        #expect(acquireID(machine.handle(.presence(check, alive: 2), now: .milliseconds(10))) == nil)
        #expect(machine.scheduledWake == Self.renewInterval)
        let next = try #require(presenceID(machine.handle(.tick, now: Self.renewInterval)))
        #expect(acquireID(machine.handle(.presence(next, alive: 3), now: Self.renewInterval + .milliseconds(5))) != nil)
    }

    @Test func leaderStepsDownAndReleasesWhenTooFewAreAlive() throws {
        var machine = makeMachine()
        let elected = try electWithQuorum(&machine)
        #expect(elected.contains { if case .elected = $0 { true } else { false } })
        let check = try #require(presenceID(machine.handle(.tick, now: Self.renewInterval)))
        let actions = machine.handle(.presence(check, alive: 1), now: Self.renewInterval + .milliseconds(5))
        #expect(demotion(actions) == .quorumLost)
        #expect(releases(actions) == [lease])
        #expect(machine.lease == nil)
        // No new campaign until a quorum is counted again.
        #expect(acquireID(actions) == nil)
        // The work is told first (demoted); the release, once that work has returned, comes after, and waits no
        // longer than the term's deadline (acquire sent at 10 ms: 10 ms + ttl − margin, the margin ttl/10).
        let demotedAt = actions.firstIndex { if case .demoted = $0 { true } else { false } }
        let releasedAt = actions.firstIndex { if case .release = $0 { true } else { false } }
        #expect(try #require(demotedAt) < #require(releasedAt))
        for case .release(let release) in actions {
            #expect(release.workDeadline == .milliseconds(10) + Self.ttl - Self.ttl / 10)
        }
    }

    @Test func leaderKeepsLeadingWhileTheQuorumHolds() throws {
        var machine = makeMachine()
        _ = try electWithQuorum(&machine)
        var now = Duration.zero
        for _ in 1...6 {
            now += Self.renewInterval
            let actions = machine.handle(.tick, now: now)
            if let renew = actions.compactMap({ if case .renew(let id, _) = $0 { id } else { nil } }).first {
                _ = machine.handle(.renewed(renew, lease), now: now + .milliseconds(1))
            }
            let check = try #require(presenceID(actions))
            #expect(demotion(machine.handle(.presence(check, alive: 2), now: now + .milliseconds(2))) == nil)
        }
        #expect(machine.lease == lease)
    }

    @Test func leaderStepsDownWhenMembersCannotBeCountedForATTL() throws {
        var machine = makeMachine()
        _ = try electWithQuorum(&machine)
        var now = Duration.zero
        var demoted: DemotionReason?
        // Renewals succeed, presence checks fail: the count confirmed at 0 s is believed until 0 s + ttl.
        while demoted == nil, now < Self.ttl * 2 {
            now += .milliseconds(500)
            let actions = machine.handle(.tick, now: now)
            demoted = demotion(actions)
            if demoted != nil {
                #expect(now >= Self.ttl)
                #expect(releases(actions) == [lease])
            }
            for case .renew(let id, let renewed) in actions {
                demoted = demoted ?? demotion(machine.handle(.renewed(id, renewed), now: now))
            }
            if let check = presenceID(actions) {
                demoted =
                    demoted
                    ?? demotion(machine.handle(.presenceFailed(check, .storeUnavailable("down")), now: now))
            }
        }
        #expect(demoted == .quorumLost)
        #expect(now < Self.ttl + Self.renewInterval)
    }

    @Test func campaignsAgainWhenTheQuorumComesBack() throws {
        var machine = makeMachine()
        _ = try electWithQuorum(&machine)
        let check = try #require(presenceID(machine.handle(.tick, now: Self.renewInterval)))
        _ = machine.handle(.presence(check, alive: 1), now: Self.renewInterval)
        let next = try #require(presenceID(machine.handle(.tick, now: Self.renewInterval * 2)))
        #expect(acquireID(machine.handle(.presence(next, alive: 2), now: Self.renewInterval * 2)) != nil)
    }

    @Test func withoutQuorumNoPresenceChecks() {
        var machine = Machine(settings: .init(ElectorConfiguration(ttl: Self.ttl)), seed: 1)
        let actions = machine.start(now: .zero)
        #expect(presenceID(actions) == nil)
        #expect(acquireID(actions) != nil)
        #expect(presenceID(machine.handle(.tick, now: Self.renewInterval)) == nil)
    }

    @Test func quorumIsValidated() {
        #expect(throws: BatonError.self) { try ElectorConfiguration(quorum: 0).validate() }
        #expect(throws: BatonError.self) { try ElectorConfiguration(quorum: 2, presenceGroup: "").validate() }
        #expect(throws: Never.self) { try ElectorConfiguration(quorum: 2, presenceGroup: "workers").validate() }
    }
}
