import Testing

@testable import Baton

/// The campaign / lead / demote logic, driven input by input with explicit times: no clock, no store, no tasks.
@Suite struct ElectorStateMachineTests {
    typealias Machine = ElectorStateMachine
    typealias Action = ElectorStateMachine.Action

    static let ttl: Duration = .seconds(10)
    static let margin: Duration = .seconds(1)
    static let renewInterval: Duration = ttl / 3

    func makeMachine() -> Machine {
        let configuration = ElectorConfiguration(ttl: Self.ttl)
        return Machine(settings: .init(configuration), seed: 1)
    }

    func lease(token: FencingToken = 7, holder: String = "me") -> Lease {
        Lease(key: "k", holder: holder, token: token, ttl: Self.ttl)
    }

    func acquireID(_ actions: [Action]) -> Machine.RequestID? {
        for case .acquire(let id) in actions { return id }
        return nil
    }

    func renewID(_ actions: [Action]) -> Machine.RequestID? {
        for case .renew(let id, _) in actions { return id }
        return nil
    }

    func demotion(_ actions: [Action]) -> DemotionReason? {
        for case .demoted(_, let reason) in actions { return reason }
        return nil
    }

    func isElected(_ actions: [Action]) -> Bool {
        actions.contains { if case .elected = $0 { true } else { false } }
    }

    /// Elects the machine: acquire sent at `sentAt`, answered at `answeredAt`.
    func elect(_ machine: inout Machine, sentAt: Duration = .zero, answeredAt: Duration = .milliseconds(5)) -> [Action]
    {
        let id = acquireID(machine.start(now: sentAt))!
        return machine.handle(.acquired(id, lease()), now: answeredAt)
    }

    @Test func startSendsAnAcquire() {
        var machine = makeMachine()
        let actions = machine.start(now: .zero)
        #expect(acquireID(actions) != nil)
        #expect(machine.lease == nil)
    }

    @Test func electedOnAcquireWithDeadlineFromSendTime() {
        var machine = makeMachine()
        let actions = elect(&machine, sentAt: .seconds(1), answeredAt: .seconds(2))
        #expect(isElected(actions))
        guard case .leading(let leading) = machine.state else {
            Issue.record("not leading")
            return
        }
        // deadline = t0 + ttl − margin with t0 the send time, not the answer time.
        #expect(leading.deadline == .seconds(1) + Self.ttl - Self.margin)
        #expect(leading.renewAt == .seconds(1) + Self.renewInterval)
        #expect(machine.scheduledWake! <= .seconds(1) + Self.renewInterval)
    }

    @Test("a term the store promises for less than the ttl ends by that promise and keeps a full term's slack")
    func shortenedTermCountsFromThePromise() throws {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .seconds(1)))!
        var promised = lease()
        promised.ttl = .seconds(9)
        let actions = machine.handle(.acquired(id, promised), now: .seconds(1) + .milliseconds(1))
        #expect(isElected(actions))
        guard case .leading(let leading) = machine.state else {
            Issue.record("not leading")
            return
        }
        // deadline = t0 + promise − margin; the renew leaves as much time before the deadline as a full term's:
        // ttl − renew interval before the end of the promise.
        #expect(leading.deadline == .seconds(1) + .seconds(9) - Self.margin)
        #expect(leading.renewAt == .seconds(1) + .seconds(9) - (Self.ttl - Self.renewInterval))
        #expect(leading.deadline - leading.renewAt == Self.ttl - Self.margin - Self.renewInterval)
        // The term itself keeps the configured ttl: renews ask for it, and events show it.
        #expect(machine.lease?.ttl == Self.ttl)
        for case .elected(let elected) in actions { #expect(elected.ttl == Self.ttl) }
        let renewAt = leading.renewAt
        #expect(renewID(machine.handle(.tick, now: renewAt - .milliseconds(1))) == nil)
        let renew = try #require(renewID(machine.handle(.tick, now: renewAt)))
        // Renewed: the full ttl again, from the renew's send time.
        _ = machine.handle(.renewed(renew, lease()), now: renewAt + .milliseconds(1))
        guard case .leading(let renewed) = machine.state else {
            Issue.record("not leading after the renew")
            return
        }
        #expect(renewed.deadline == renewAt + Self.ttl - Self.margin)
        #expect(renewed.renewAt == renewAt + Self.renewInterval)
    }

    @Test("a promise of less than a full term's slack is renewed at once")
    func shortPromiseIsRenewedAtOnce() throws {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .zero))!
        var promised = lease()
        promised.ttl = .seconds(5)
        _ = machine.handle(.acquired(id, promised), now: .milliseconds(1))
        guard case .leading(let leading) = machine.state else {
            Issue.record("not leading")
            return
        }
        #expect(leading.deadline == .seconds(5) - Self.margin)
        #expect(leading.renewAt == .zero)
        #expect(renewID(machine.handle(.tick, now: .milliseconds(1))) != nil)
    }

    @Test("a promise shorter than the margin is not acted on, as a late answer is not: the next acquire asks again")
    func promiseShorterThanTheMarginIsNotActedOn() {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .zero))!
        var promised = lease()
        promised.ttl = Self.margin / 2
        let actions = machine.handle(.acquired(id, promised), now: .milliseconds(1))
        #expect(!isElected(actions))
        #expect(!actions.contains { if case .release = $0 { true } else { false } })
        #expect(machine.lease == nil)
        guard case .following(let following) = machine.state else {
            Issue.record("not following")
            return
        }
        #expect(following.retryAt != nil)
    }

    @Test func renewsAtTheRenewInterval() {
        var machine = makeMachine()
        _ = elect(&machine)
        #expect(renewID(machine.handle(.tick, now: Self.renewInterval - .milliseconds(1))) == nil)
        #expect(renewID(machine.handle(.tick, now: Self.renewInterval)) != nil)
    }

    @Test func renewAnswerMovesTheDeadlineFromItsSendTime() {
        var machine = makeMachine()
        _ = elect(&machine)
        let id = renewID(machine.handle(.tick, now: Self.renewInterval))!
        _ = machine.handle(.renewed(id, lease()), now: .seconds(5))
        guard case .leading(let leading) = machine.state else {
            Issue.record("not leading")
            return
        }
        #expect(leading.deadline == Self.renewInterval + Self.ttl - Self.margin)
    }

    @Test func demotesAtTheDeadlineWhileARenewHangs() {
        var machine = makeMachine()
        _ = elect(&machine)
        let deadline = Self.ttl - Self.margin
        _ = machine.handle(.tick, now: Self.renewInterval)  // renew sent, never answered
        _ = machine.handle(.tick, now: Self.renewInterval * 2)  // request timeout: a second renew, never answered
        let before = machine.handle(.tick, now: deadline - .nanoseconds(1))
        #expect(demotion(before) == nil)
        #expect(machine.lease != nil)
        let at = machine.handle(.tick, now: deadline)
        #expect(demotion(at) == .deadlineReached)
        #expect(machine.lease == nil)
        #expect(acquireID(at) != nil, "a demoted elector campaigns again")
    }

    @Test func schedulesATickAtTheDeadlineWhileARenewIsInFlight() {
        var machine = makeMachine()
        _ = elect(&machine)
        let renewTimeoutAt = Self.renewInterval * 2
        _ = machine.handle(.tick, now: Self.renewInterval)
        #expect(machine.scheduledWake! <= min(renewTimeoutAt, Self.ttl - Self.margin))
        // After the second renew is sent at the request timeout, the next tick is no later than the deadline.
        let again = machine.handle(.tick, now: renewTimeoutAt)
        #expect(renewID(again) != nil)
        #expect(machine.scheduledWake! <= Self.ttl - Self.margin)
    }

    @Test func aLateRenewAnswerAfterTheDeadlineDoesNotRestoreLeadership() {
        var machine = makeMachine()
        _ = elect(&machine)
        let id = renewID(machine.handle(.tick, now: Self.renewInterval))!
        _ = machine.handle(.tick, now: Self.ttl - Self.margin)
        #expect(machine.lease == nil)
        let late = machine.handle(.renewed(id, lease()), now: Self.ttl)
        #expect(!isElected(late))
        #expect(machine.lease == nil)
    }

    @Test func renewLostDemotesAtOnce() {
        var machine = makeMachine()
        _ = elect(&machine)
        let id = renewID(machine.handle(.tick, now: Self.renewInterval))!
        let actions = machine.handle(.renewLost(id), now: Self.renewInterval + .milliseconds(2))
        #expect(demotion(actions) == .lost)
        #expect(acquireID(actions) != nil)
    }

    @Test func renewFailureRetriesBeforeTheDeadline() {
        var machine = makeMachine()
        _ = elect(&machine)
        let id = renewID(machine.handle(.tick, now: Self.renewInterval))!
        let actions = machine.handle(.renewFailed(id, .storeUnavailable("down")), now: Self.renewInterval)
        #expect(demotion(actions) == nil)
        guard case .leading(let leading) = machine.state else {
            Issue.record("not leading")
            return
        }
        let retryAt = leading.renewAt
        #expect(machine.scheduledWake! <= retryAt)
        #expect(retryAt > Self.renewInterval && retryAt < Self.ttl - Self.margin)
        #expect(renewID(machine.handle(.tick, now: retryAt)) != nil)
    }

    /// The late answer may renew a term demoted at its deadline whose work is still stopping, and a release could
    /// reach the store after the next acquire took the same term again: it is taken again instead.
    @Test func anAnswerTooLateToUseIsNotReleasedButTakenAgain() throws {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .zero))!
        let actions = machine.handle(.acquired(id, lease()), now: Self.ttl - Self.margin)
        #expect(!isElected(actions))
        #expect(!actions.contains { if case .release = $0 { true } else { false } })
        guard case .following(let following) = machine.state, let retryAt = following.retryAt else {
            Issue.record("no retry planned")
            return
        }
        let retry = try #require(acquireID(machine.handle(.tick, now: retryAt)))
        #expect(isElected(machine.handle(.acquired(retry, lease()), now: retryAt + .milliseconds(1))))
    }

    @Test func followerWaitsAndAcquiresWhenTheKeyIsReleased() {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .zero))!
        let other = LeaderInfo(holder: "other", token: 3)
        let held = machine.handle(.held(id, other), now: .milliseconds(1))
        #expect(acquireID(held) == nil)
        #expect(held.contains { if case .leaderChanged(let info) = $0 { info == other } else { false } })
        // The poll safety net is set…
        guard case .following(let following) = machine.state else {
            Issue.record("not following")
            return
        }
        #expect(following.retryAt == .milliseconds(1) + Self.ttl / 2)
        #expect(machine.scheduledWake! <= following.retryAt!)
        // …but a release observed on the change feed triggers an acquire at once.
        let released = machine.handle(.observed(nil), now: .milliseconds(50))
        #expect(acquireID(released) != nil)
    }

    @Test func aFollowerWithAWorkingFeedNeverPolls() {
        var machine = makeMachine()
        let id = acquireID(machine.start(now: .zero))!
        let other = LeaderInfo(holder: "other", token: 3)
        _ = machine.handle(.observed(other), now: .milliseconds(1))
        _ = machine.handle(.held(id, other), now: .milliseconds(2))
        guard case .following(let following) = machine.state else {
            Issue.record("not following")
            return
        }
        #expect(following.retryAt == nil, "the feed wakes the candidate; nothing to poll")
        for second in 1...60 {
            #expect(acquireID(machine.handle(.tick, now: .seconds(second))) == nil)
        }
        // The feed fails: now the candidate polls, until the feed delivers again.
        let lost = machine.handle(.feedLost, now: .seconds(61))
        #expect(machine.scheduledWake! <= .seconds(61) + Self.ttl / 2)
        #expect(acquireID(lost) == nil)
        #expect(acquireID(machine.handle(.tick, now: .seconds(61) + Self.ttl / 2)) != nil)
    }

    /// On a store with a queue (etcd), the change feed names the head of the queue before it has taken the term:
    /// the candidate named acquires at once, every other one keeps waiting. A report of the candidate's own holder
    /// with the token of a term it held before is a stale view of that term, not its turn.
    @Test("a waiting candidate acquires when the feed names it the next in line, and only then")
    func theCandidateNamedNextAcquires() {
        var machine = Machine(settings: .init(ElectorConfiguration(ttl: Self.ttl), holder: "me"), seed: 1)
        let leader = LeaderInfo(holder: "leader", token: 3)
        let first = acquireID(machine.start(now: .zero))!
        _ = machine.handle(.observed(leader), now: .milliseconds(1))
        _ = machine.handle(.held(first, leader), now: .milliseconds(2))
        let someoneElse = LeaderInfo(holder: "other", token: 4)
        #expect(acquireID(machine.handle(.observed(someoneElse), now: .seconds(1))) == nil, "another's turn")
        let mine = LeaderInfo(holder: "me", token: 5)
        let turn = acquireID(machine.handle(.observed(mine), now: .seconds(2)))
        #expect(turn != nil, "named next: it acquires at once")
        let elected = machine.handle(.acquired(turn!, lease(token: 5)), now: .seconds(2) + .milliseconds(1))
        #expect(isElected(elected))
        _ = machine.handle(.resign, now: .seconds(3))
        // A machine without a holder (as before queues named their next) waits for "no leader".
        var plain = makeMachine()
        let id = acquireID(plain.start(now: .zero))!
        _ = plain.handle(.held(id, leader), now: .milliseconds(1))
        #expect(acquireID(plain.handle(.observed(LeaderInfo(holder: "me", token: 5)), now: .seconds(1))) == nil)
    }

    @Test("a stale report of the candidate's own last term does not make it acquire")
    func aStaleOwnTermIsNotATurn() {
        var machine = Machine(settings: .init(ElectorConfiguration(ttl: Self.ttl), holder: "me"), seed: 1)
        let id = acquireID(machine.start(now: .zero))!
        _ = machine.handle(.acquired(id, lease(token: 7, holder: "me")), now: .milliseconds(1))
        // The term ends (the renew is lost), and the feed still shows it for a moment.
        let renew = renewID(machine.handle(.tick, now: Self.renewInterval))!
        _ = machine.handle(.renewLost(renew), now: Self.renewInterval + .milliseconds(1))
        guard case .following(let following) = machine.state else {
            Issue.record("not following after the lost term")
            return
        }
        if let request = following.inFlight {
            // Its acquire after the loss is refused: another candidate is next.
            let other = LeaderInfo(holder: "other", token: 8)
            _ = machine.handle(.held(request.id, other), now: Self.renewInterval + .milliseconds(2))
        }
        let stale = machine.handle(.observed(LeaderInfo(holder: "me", token: 7)), now: .seconds(5))
        #expect(acquireID(stale) == nil, "its own old term is not its turn")
        let next = machine.handle(.observed(LeaderInfo(holder: "me", token: 9)), now: .seconds(6))
        #expect(acquireID(next) != nil, "named next with a new token: its turn")
    }

    /// A lost wake-up: the store refuses an acquire (the old leader still held the key when it was read), the
    /// old leader releases, and the feed's "no leader" arrives before that refusal. The candidate must ask again:
    /// the feed will not report the release twice, and on a queue (etcd) no one leads until the head asks.
    @Test func aReleaseSeenWhileAnAcquireIsInFlightIsNotLost() {
        var machine = makeMachine()
        let other = LeaderInfo(holder: "other", token: 3)
        let first = acquireID(machine.start(now: .zero))!
        _ = machine.handle(.observed(other), now: .milliseconds(1))
        _ = machine.handle(.held(first, other), now: .milliseconds(2))
        // The feed works, so the candidate waits for it; the feed reports the release…
        let second = acquireID(machine.handle(.observed(nil), now: .seconds(1)))!
        // …and, while that acquire is in flight, reports a new leader and its release again.
        let next = LeaderInfo(holder: "next", token: 4)
        #expect(acquireID(machine.handle(.observed(next), now: .seconds(1) + .milliseconds(1))) == nil)
        #expect(acquireID(machine.handle(.observed(nil), now: .seconds(1) + .milliseconds(2))) == nil)
        // The refusal that comes back is older than the release: the candidate asks once more, at once.
        let retried = machine.handle(.held(second, next), now: .seconds(1) + .milliseconds(3))
        let third = acquireID(retried)
        #expect(third != nil, "the release seen during the request must not be lost")
        // A refusal of that new request, with no release seen meanwhile, is final until the feed speaks.
        let refused = machine.handle(.held(third!, next), now: .seconds(1) + .milliseconds(4))
        #expect(acquireID(refused) == nil)
        for second in 2...30 {
            #expect(acquireID(machine.handle(.tick, now: .seconds(second))) == nil)
        }
    }

    @Test func acquireFailuresBackOffWithJitterAndCap() {
        var machine = makeMachine()
        var id = acquireID(machine.start(now: .zero))!
        var now: Duration = .zero
        var delays: [Duration] = []
        for _ in 0..<12 {
            let actions = machine.handle(.acquireFailed(id, .storeUnavailable("down")), now: now)
            #expect(actions.contains { if case .storeError = $0 { true } else { false } })
            guard case .following(let following) = machine.state, let retryAt = following.retryAt else {
                Issue.record("no retry planned")
                return
            }
            #expect(machine.scheduledWake! <= retryAt)
            delays.append(retryAt - now)
            now = retryAt
            id = acquireID(machine.handle(.tick, now: now))!
        }
        #expect(delays[0] <= .milliseconds(100) && delays[0] >= .milliseconds(80))
        #expect(delays[3] > delays[0])
        #expect(delays.allSatisfy { $0 <= .seconds(5) })
    }

    @Test func observingAnotherLeaderWhileLeadingTriggersARenew() {
        var machine = makeMachine()
        _ = elect(&machine)
        let actions = machine.handle(.observed(LeaderInfo(holder: "other", token: 8)), now: .seconds(1))
        #expect(renewID(actions) != nil)
        #expect(demotion(actions) == nil, "an observation alone never demotes; the renew decides")
    }

    @Test func resignWhileLeadingReleases() {
        var machine = makeMachine()
        _ = elect(&machine)
        let actions = machine.handle(.resign, now: .seconds(1))
        #expect(demotion(actions) == .resigned)
        guard case .finish(let released)? = actions.last else {
            Issue.record("no finish")
            return
        }
        #expect(released?.lease.token == 7)
        #expect(machine.isFinished)
    }
}
