import Testing

@testable import Baton

/// Leaving the queue, resigning, stopping, and a waiting candidate's checks of the store (see
/// ``ElectorStateMachineTests``).
extension ElectorStateMachineTests {
    func leavesQueue(_ actions: [Action]) -> Bool {
        actions.contains { if case .leaveQueue = $0 { true } else { false } }
    }

    func finishes(_ actions: [Action]) -> Bool {
        guard case .finish(nil)? = actions.last else { return false }
        return true
    }

    @Test("a waiting candidate that stops leaves the store's queue before it finishes, on a store with a queue only")
    func stoppingWhileWaitingLeavesTheQueue() throws {
        let leader = LeaderInfo(holder: "other", token: 3)
        for (queues, input) in [(true, Machine.Input.resign), (true, .stop), (false, .resign), (false, .stop)] {
            var machine = Machine(
                settings: .init(ElectorConfiguration(ttl: Self.ttl), queuesWaiters: queues, holder: "me"), seed: 1)
            let id = try #require(acquireID(machine.start(now: .zero)))
            _ = machine.handle(.held(id, leader), now: .milliseconds(5))
            let actions = machine.handle(input, now: .seconds(1))
            #expect(leavesQueue(actions) == queues, "queues: \(queues), \(input): \(actions)")
            if queues {
                let left = try #require(actions.firstIndex { if case .leaveQueue = $0 { true } else { false } })
                #expect(left == actions.count - 2, "leaves just before the finish: \(actions)")
            }
            #expect(finishes(actions))
            #expect(machine.isFinished)
        }
    }

    @Test("no queue to leave: never refused (the store failed), or led since; an acquire in flight may have joined")
    func leavesTheQueueOnlyWhenItMayHaveAPlace() throws {
        let settings = ElectorStateMachine.Settings(
            ElectorConfiguration(ttl: Self.ttl), queuesWaiters: true, holder: "me")
        // Only failures: no place.
        var failing = Machine(settings: settings, seed: 1)
        let failed = try #require(acquireID(failing.start(now: .zero)))
        _ = failing.handle(.acquireFailed(failed, .storeUnavailable("down")), now: .milliseconds(5))
        #expect(!leavesQueue(failing.handle(.resign, now: .seconds(1))))
        // Refused, then elected and resigned: the term is released, no place is left to leave.
        var leading = Machine(settings: settings, seed: 1)
        let first = try #require(acquireID(leading.start(now: .zero)))
        let refusal = leading.handle(.held(first, LeaderInfo(holder: "other", token: 3)), now: .milliseconds(5))
        _ = refusal
        let feed = leading.handle(.observed(nil), now: .seconds(1))
        let second = try #require(acquireID(feed))
        _ = leading.handle(.acquired(second, lease()), now: .seconds(1) + .milliseconds(5))
        let resigned = leading.handle(.resign, now: .seconds(2))
        #expect(!leavesQueue(resigned))
        guard case .finish(let release?)? = resigned.last else {
            Issue.record("no release: \(resigned)")
            return
        }
        #expect(release.lease.token == 7)
        // Stopped with its first acquire in flight: it may have joined.
        var asking = Machine(settings: settings, seed: 1)
        _ = asking.start(now: .zero)
        #expect(leavesQueue(asking.handle(.stop, now: .milliseconds(1))))
        // Resigned with its first acquire in flight, which is then refused: it joined, and leaves.
        var resigning = Machine(settings: settings, seed: 1)
        let inFlight = try #require(acquireID(resigning.start(now: .zero)))
        #expect(resigning.handle(.resign, now: .milliseconds(1)).isEmpty == false)
        let answered = resigning.handle(.held(inFlight, LeaderInfo(holder: "other", token: 3)), now: .milliseconds(5))
        #expect(leavesQueue(answered))
        #expect(finishes(answered))
        // Resigned with an acquire in flight that then fails (a timeout): it may have landed, so it leaves (and the
        // elector gives back a term it may have started).
        var timingOut = Machine(settings: settings, seed: 1)
        let lost = try #require(acquireID(timingOut.start(now: .zero)))
        _ = timingOut.handle(.resign, now: .milliseconds(1))
        let failedAnswer = timingOut.handle(.acquireFailed(lost, .timeout("no answer")), now: .milliseconds(5))
        #expect(leavesQueue(failedAnswer))
        #expect(finishes(failedAnswer))
    }

    @Test("resigning demotes first, and the release waits for the work no longer than the term's deadline")
    func resignDemotesBeforeTheReleaseBoundedByTheDeadline() throws {
        var machine = makeMachine()
        _ = elect(&machine)
        let actions = machine.handle(.resign, now: .seconds(2))
        let demotedAt = try #require(actions.firstIndex { if case .demoted = $0 { true } else { false } })
        let finishedAt = try #require(actions.firstIndex { if case .finish = $0 { true } else { false } })
        #expect(demotedAt < finishedAt)
        guard case .finish(let release?) = actions[finishedAt] else {
            Issue.record("no release")
            return
        }
        #expect(release.workDeadline == Self.ttl - Self.margin)
    }

    @Test("a renew moves the term's deadline and says so")
    func renewExtendsTheTerm() throws {
        var machine = makeMachine()
        _ = elect(&machine)
        #expect(machine.termDeadline == Self.ttl - Self.margin)
        let id = try #require(renewID(machine.handle(.tick, now: Self.renewInterval)))
        let actions = machine.handle(.renewed(id, lease()), now: Self.renewInterval + .milliseconds(3))
        #expect(actions.contains { if case .extended(let lease) = $0 { lease.token == 7 } else { false } })
        #expect(machine.termDeadline == Self.renewInterval + Self.ttl - Self.margin)
    }

    /// Checks the store once per ttl while waiting with a healthy feed; returns the check's id.
    func waitWithHealthyFeed(_ machine: inout Machine) throws -> (Duration, Machine.RequestID) {
        let id = try #require(acquireID(machine.start(now: .zero)))
        let other = LeaderInfo(holder: "other", token: 3)
        _ = machine.handle(.observed(other), now: .milliseconds(1))
        _ = machine.handle(.held(id, other), now: .milliseconds(2))
        // The check is planned a ttl after the acquire's refusal (the feed was already delivering).
        let checkAt = Self.ttl + .milliseconds(2)
        #expect(machine.scheduledWake! <= checkAt)
        #expect(
            machine.handle(.tick, now: checkAt - .milliseconds(1)).allSatisfy {
                if case .check = $0 { false } else { true }
            })
        let actions = machine.handle(.tick, now: checkAt)
        for case .check(let check) in actions { return (checkAt, check) }
        Issue.record("no check of the store a ttl after the feed last spoke: \(actions)")
        throw CancellationError()
    }

    @Test("a waiting candidate with a healthy feed still reads the store once per ttl, and campaigns if it is free")
    func waitingCandidateChecksTheStoreOncePerTTL() throws {
        var machine = makeMachine()
        let (at, check) = try waitWithHealthyFeed(&machine)
        // The feed missed the expiry (a connection dropped silently): the check finds the key free.
        #expect(acquireID(machine.handle(.checked(check, nil), now: at + .milliseconds(1))) != nil)
    }

    @Test func aCheckThatFindsTheSameLeaderPlansTheNextOneATTLLater() throws {
        var machine = makeMachine()
        let (at, check) = try waitWithHealthyFeed(&machine)
        let actions = machine.handle(.checked(check, LeaderInfo(holder: "other", token: 3)), now: at)
        #expect(acquireID(actions) == nil)
        guard case .following(let following) = machine.state else {
            Issue.record("not following")
            return
        }
        #expect(following.checkAt == at + Self.ttl)
        let next = machine.handle(.tick, now: at + Self.ttl)
        #expect(next.contains { if case .check = $0 { true } else { false } })
    }

    @Test(
        "on a store that queues waiters, a waiting candidate asks again at the store's interval, not checking",
        arguments: [1, 3])
    func waitingCandidateKeepsItsPlaceByAskingAgain(asksPerTTL: Int) throws {
        var machine = Machine(
            settings: .init(
                ElectorConfiguration(ttl: Self.ttl), queuesWaiters: true, queueAsksPerTTL: asksPerTTL),
            seed: 1)
        var id = try #require(acquireID(machine.start(now: .zero)))
        let other = LeaderInfo(holder: "other", token: 3)
        _ = machine.handle(.observed(other), now: .milliseconds(1))
        var now = Duration.milliseconds(2)
        for _ in 0..<3 {
            _ = machine.handle(.held(id, other), now: now)
            let reaskAt = now + Self.ttl / asksPerTTL
            guard case .following(let following) = machine.state else {
                Issue.record("not following")
                return
            }
            #expect(following.retryAt == reaskAt && following.checkAt == nil)
            #expect(acquireID(machine.handle(.tick, now: reaskAt - .milliseconds(1))) == nil)
            // The feed speaking again does not cancel the plan.
            _ = machine.handle(.observed(other), now: reaskAt - .milliseconds(1))
            let actions = machine.handle(.tick, now: reaskAt)
            #expect(!actions.contains { if case .check = $0 { true } else { false } })
            id = try #require(acquireID(actions), "no acquire \(Self.ttl / asksPerTTL) after the refusal")
            now = reaskAt + .milliseconds(1)
        }
        // A release the feed reports is still acted on at once.
        _ = machine.handle(.held(id, other), now: now)
        #expect(acquireID(machine.handle(.observed(nil), now: now + .milliseconds(1))) != nil)
    }

    @Test func resignWithAnAcquireInFlightReleasesWhatItGrants() {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .zero))!
        #expect(
            machine.handle(.resign, now: .milliseconds(1)).contains { if case .schedule = $0 { true } else { false } })
        #expect(!machine.isFinished)
        let actions = machine.handle(.acquired(id, lease()), now: .milliseconds(2))
        guard case .finish(let released)? = actions.last else {
            Issue.record("no finish")
            return
        }
        #expect(released?.lease.token == 7)
        #expect(!isElected(actions))
    }

    @Test func resignWaitsForAnAcquireOnlyUntilTheReleaseTimeout() {
        var machine = makeMachine()
        _ = machine.start(now: .zero)
        _ = machine.handle(.resign, now: .zero)
        #expect(machine.handle(.tick, now: .seconds(1)).allSatisfy { if case .finish = $0 { false } else { true } })
        let actions = machine.handle(.tick, now: .seconds(2))
        #expect(actions.count == 1)
        #expect(machine.isFinished)
    }

    @Test func stopWhileFollowingFinishesAtOnce() {
        var machine = makeMachine()
        _ = machine.start(now: .zero)
        let actions = machine.handle(.stop, now: .zero)
        guard case .finish(nil)? = actions.last else {
            Issue.record("expected finish without release")
            return
        }
        #expect(machine.isFinished)
    }

    @Test func hungAcquireTimesOutAndRetries() {
        var machine = makeMachine()
        _ = machine.start(now: .zero)
        let actions = machine.handle(.tick, now: Self.renewInterval)
        #expect(actions.contains { if case .storeError(let error) = $0 { error.code == .timeout } else { false } })
        guard case .following(let following) = machine.state, let retryAt = following.retryAt else {
            Issue.record("no retry planned")
            return
        }
        #expect(machine.scheduledWake! <= retryAt)
        #expect(acquireID(machine.handle(.tick, now: retryAt)) != nil)
    }
}
