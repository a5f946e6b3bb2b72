import Baton
import Foundation
import Testing

@testable import BatonEtcd

/// The campaign decisions of the etcd store, on explicit times: no server, no sleeps.
@Suite struct EtcdCampaignMachineTests {
    typealias Machine = EtcdCampaignMachine

    static let id = Machine.CampaignID(key: "k", holder: "me")

    static func campaign(
        lease: Int64 = 7, ttlSeconds: Int64 = 10, revision: Int64 = 20, leading: Bool = false,
        metadata: String? = nil, lastTry: Duration = .zero, keptAliveAt: Duration = .zero
    ) -> Machine.Campaign {
        Machine.Campaign(
            lease: lease, name: lease, ttlSeconds: ttlSeconds, revision: revision, leading: leading, metadata: metadata,
            lastTry: lastTry, lastKeepAlive: keptAliveAt)
    }

    static func candidate(
        lease: Int64?, revision: Int64, holder: String? = nil, waiting: Bool = false, value: String = ""
    ) -> EtcdLeaseStore.Candidate {
        EtcdLeaseStore.Candidate(
            key: Data("k/\(lease ?? 0)".utf8), revision: revision, lease: lease, name: lease, value: value,
            holder: holder, waiting: waiting)
    }

    // MARK: Handed-over terms

    @Test("a handed-over term is promised what the last keep-alive ensures, and only if more than half the ttl")
    func sureTerm() {
        let sure = Machine.sureTerm
        let now = Duration.seconds(100)
        #expect(sure(Self.campaign(keptAliveAt: now - .seconds(2)), .seconds(10), now) == .seconds(8))
        #expect(sure(Self.campaign(keptAliveAt: now), .seconds(10), now) == .seconds(10))
        // Never more than asked (etcd's whole seconds round a ttl up).
        #expect(sure(Self.campaign(ttlSeconds: 2, keptAliveAt: now), .milliseconds(1500), now) == .milliseconds(1500))
        // Exactly half the ttl left, or less: a keep-alive starts the term instead.
        #expect(sure(Self.campaign(keptAliveAt: now - .seconds(5)), .seconds(10), now) == nil)
        #expect(sure(Self.campaign(keptAliveAt: now - .milliseconds(4999)), .seconds(10), now) == .milliseconds(5001))
        #expect(sure(Self.campaign(keptAliveAt: now - .seconds(12)), .seconds(10), now) == nil)
    }

    @Test("a handover shown by the watch starts the term without a request only while the lease is surely alive")
    func attemptAfterAHandover() {
        let handedToMe = [Self.candidate(lease: 7, revision: 20, holder: "me")]
        let now = Duration.seconds(100)
        let fresh = Self.campaign(keptAliveAt: now - .seconds(1))
        func attempt(
            _ campaign: Machine.Campaign, metadata: String? = nil, view: [EtcdLeaseStore.Candidate]?,
            elsewhere: Bool = false
        )
            -> Machine.AcquireAttempt
        {
            Machine.attempt(
                campaign, ttl: .seconds(10), metadata: metadata, view: view, now: now, holderMayAskElsewhere: elsewhere)
        }
        // A holder that asks through this store only takes the handed term from the watch.
        #expect(attempt(fresh, view: handedToMe) == .takeHandover(sure: .seconds(9)))
        // One that may also ask through other instances (baton serve replicas) has a read confirm it first.
        #expect(attempt(fresh, view: handedToMe, elsewhere: true) == .confirmHandover(sure: .seconds(9)))
        // The last keep-alive is too old: a keep-alive goes out with the check.
        let stale = Self.campaign(keptAliveAt: now - .seconds(6))
        #expect(attempt(stale, view: handedToMe) == .keepAliveAndCheckHandover)
        #expect(attempt(stale, view: handedToMe, elsewhere: true) == .keepAliveAndCheckHandover)
        // No fresh view, or a view where this candidate still waits: a keep-alive and a check too.
        #expect(attempt(fresh, view: nil) == .keepAliveAndCheckHandover)
        let waiting = [Self.candidate(lease: 7, revision: 20, holder: "me", waiting: true)]
        #expect(attempt(fresh, view: waiting) == .keepAliveAndCheckHandover)
        // Another candidate at the head: not a handover to this one.
        let handedToAnother = [Self.candidate(lease: 8, revision: 19, holder: "other")] + handedToMe
        #expect(attempt(fresh, view: handedToAnother) == .keepAliveAndCheckHandover)
        // New metadata is written, and a leader renews with a write.
        #expect(attempt(fresh, metadata: "m", view: handedToMe) == .keepAliveAndLead)
        #expect(attempt(Self.campaign(leading: true), view: handedToMe) == .keepAliveAndLead)
    }

    @Test("the store's warm-up takes a handover shown by the watch, as a successor's acquire does")
    func warmUpTakesAHandover() {
        #expect(EtcdLeaseStore.runtimeWarmUp)
    }

    // MARK: Starting an acquire

    @Test("a waiting candidate the fresh view shows behind another is refused after only a keep-alive")
    func heldFromTheView() {
        var machine = Machine()
        guard case .join = machine.startAcquire(Self.id, ttl: .seconds(10), view: nil, now: .zero) else {
            Issue.record("a holder without a candidate here does not join")
            return
        }
        machine.joined(Self.id, Self.campaign())
        let queue = [
            Self.candidate(lease: 3, revision: 10, holder: "leader"),
            Self.candidate(lease: 7, revision: 20, holder: "me"),
        ]
        guard
            case .held(let leader, let campaign) = machine.startAcquire(
                Self.id, ttl: .seconds(10), view: queue, now: .seconds(4))
        else {
            Issue.record("not refused from the view")
            return
        }
        #expect(leader.holder == "leader" && leader.token == 10)
        #expect(campaign.lease == 7, "the keep-alive goes to the candidate's own lease")
        #expect(machine.campaigns[Self.id]?.lastTry == .seconds(4), "the try counts for the upkeep")
        // Without a fresh view, or at the head, the store asks etcd.
        guard case .campaign(_, nil) = machine.startAcquire(Self.id, ttl: .seconds(10), view: nil, now: .seconds(5))
        else {
            Issue.record("without a view the acquire did not go on")
            return
        }
        guard
            case .campaign(_, nil) = machine.startAcquire(
                Self.id, ttl: .seconds(10), view: Array(queue.dropFirst()), now: .seconds(5))
        else {
            Issue.record("at the head the acquire did not go on")
            return
        }
    }

    @Test("a ttl of other whole seconds moves the candidate to a new lease, which starts its keep-alive time")
    func moveToANewTTL() {
        var machine = Machine()
        machine.joined(Self.id, Self.campaign(ttlSeconds: 10))
        guard
            case .campaign(let old, .some(3)) = machine.startAcquire(
                Self.id, ttl: .milliseconds(2500), view: nil, now: .seconds(1))
        else {
            Issue.record("no move to a lease of 3 s")
            return
        }
        guard
            case .campaign(_, nil) = machine.startAcquire(
                Self.id, ttl: .milliseconds(9001), view: nil, now: .seconds(1))
        else {
            Issue.record("9.001 s rounds up to the lease's 10 s: no move")
            return
        }
        let moved = machine.moved(Self.id, from: old, to: 8, ttlSeconds: 3, grantedAt: .seconds(2), shared: false)
        #expect(moved.lease == 8 && moved.ttlSeconds == 3 && moved.lastKeepAlive == .seconds(2))
        #expect(moved.name == old.name, "the keys keep their names")
        #expect(moved.revision == old.revision, "the token and the place in the queue stay")
    }

    // MARK: Queue positions and handovers

    @Test func positions() {
        let queue = [
            Self.candidate(lease: 3, revision: 10, holder: "a"), Self.candidate(lease: 7, revision: 20, holder: "me"),
        ]
        #expect(Machine.position(of: 3, in: queue) == .head)
        #expect(Machine.position(of: 7, in: queue) == .behind(LeaderInfo(holder: "a", token: 10)))
        #expect(Machine.position(of: 9, in: queue) == .absent)
    }

    @Test("a release hands the key to the next candidate only if it is a Baton candidate waiting")
    func successor() {
        let leader = Self.campaign(lease: 3, revision: 10, leading: true)
        let next = Self.candidate(lease: 7, revision: 20, holder: "b", waiting: true)
        let handed = Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10, holder: "a"), next])
        #expect(handed?.holder == "b" && handed?.name == 7 && handed?.candidate.revision == 20)
        #expect(Machine.successor(of: leader, view: nil) == nil, "no fresh view")
        #expect(Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10)]) == nil, "no one next")
        let etcdctl = Self.candidate(lease: 7, revision: 20, holder: nil, value: "proposal")
        #expect(Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10), etcdctl]) == nil)
        let taken = Self.candidate(lease: 7, revision: 20, holder: "b", waiting: false)
        #expect(Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10), taken]) == nil)
        #expect(Machine.successor(of: leader, view: [next]) == nil, "the leader is not the head")
    }

    // MARK: Upkeep

    @Test("the record of a waiting candidate whose holder stopped asking here is dropped after its ttl, not revoked")
    func abandonment() {
        var machine = Machine()
        machine.joined(
            Self.id, Self.campaign(lease: 7, ttlSeconds: 10, lastTry: .seconds(100), keptAliveAt: .seconds(100)))
        let leader = Machine.CampaignID(key: "k2", holder: "me")
        machine.joined(leader, Self.campaign(lease: 8, ttlSeconds: 1, leading: true))
        #expect(machine.upkeep(now: .seconds(110)).isEmpty)
        #expect(machine.campaigns[Self.id] != nil, "exactly a ttl: not yet")
        // Its lease is kept alive only by its holder's asks, which may go through another instance: etcd expires
        // it, the store does not revoke it.
        #expect(machine.upkeep(now: .seconds(111)).isEmpty)
        #expect(machine.campaigns[Self.id] == nil)
        #expect(machine.campaigns[leader] != nil, "a term's record stays until it is renewed, released or lost")
    }

    @Test("the lease of a leader that handed its key over is revoked after the delay, not before")
    func delayedRevoke() {
        var machine = Machine()
        machine.revokeLater(5, now: .seconds(10))
        #expect(machine.upkeep(now: .seconds(10) + .milliseconds(499)).isEmpty)
        #expect(machine.upkeep(now: .seconds(10) + .milliseconds(500)) == [5])
        #expect(machine.upkeep(now: .seconds(11)).isEmpty, "revoked once")
    }

    @Test("closing revokes waiting candidates' leases and pending revokes, never a term's")
    func close() {
        var machine = Machine()
        machine.joined(Self.id, Self.campaign(lease: 7))
        machine.joined(Machine.CampaignID(key: "k2", holder: "me"), Self.campaign(lease: 9, leading: true))
        machine.revokeLater(5, now: .zero)
        let leases = machine.close()
        #expect(Set(leases) == [5, 7])
        let again = machine.close()
        #expect(machine.campaigns.isEmpty && again.isEmpty)
    }

    @Test("a candidate read from etcd is recorded with its lease, name and TTL; a term is found by holder and token")
    func adoption() {
        var machine = Machine()
        var read = Self.candidate(lease: 9, revision: 20, holder: "me", value: "meta")
        read.name = 7
        let adopted = machine.adopt(Self.id, read, ttlSeconds: 4, keptAliveAt: .seconds(1), now: .seconds(2))
        #expect(adopted?.lease == 9 && adopted?.name == 7 && adopted?.ttlSeconds == 4 && adopted?.leading == true)
        #expect(adopted?.metadata == "meta" && adopted?.lastKeepAlive == .seconds(1))
        #expect(machine.renewable(Self.id, token: 20)?.lease == 9)
        let other = Self.candidate(lease: 3, revision: 10, holder: "other")
        #expect(machine.adopt(Self.id, other, ttlSeconds: 4, keptAliveAt: .zero, now: .zero) == nil, "not its own")
        let waiting = Self.candidate(lease: 11, revision: 30, holder: "me", waiting: true)
        let election = [other, read, waiting]
        #expect(Machine.term(of: "me", token: 20, in: election)?.lease == 9)
        #expect(Machine.term(of: "me", token: 30, in: election) == nil, "a waiting candidate has no term")
        #expect(Machine.term(of: "other", token: 20, in: election) == nil, "another holder's token")
        #expect(Machine.ownCandidate(of: "me", in: election, other: 12)?.lease == 9, "the oldest")
        #expect(Machine.ownCandidate(of: "me", in: [waiting], other: 11) == nil, "only the one just joined")
    }

    @Test("renew and release act only on the term this store holds")
    func terms() {
        var machine = Machine()
        machine.joined(Self.id, Self.campaign(lease: 7, revision: 20, leading: false))
        #expect(machine.renewable(Self.id, token: 20) == nil, "a waiting candidate has no term to renew")
        let answer11 = machine.markLeading(Self.id, lease: 7, metadata: "m")
        #expect(answer11)
        let answer12 = machine.markLeading(Self.id, lease: 6, metadata: "m")
        #expect(!answer12, "another lease: the campaign moved on")
        #expect(machine.renewable(Self.id, token: 20)?.metadata == "m")
        #expect(machine.renewable(Self.id, token: 19) == nil)
        let answer13 = machine.release(Self.id, token: 19)
        #expect(answer13 == nil)
        let answer14 = machine.release(Self.id, token: 20)
        #expect(answer14?.lease == 7)
        #expect(machine.campaigns.isEmpty)
    }

    @Test func ttlSecondsRoundUp() {
        #expect(Machine.ttlSeconds(.milliseconds(1)) == 1)
        #expect(Machine.ttlSeconds(.seconds(2)) == 2)
        #expect(Machine.ttlSeconds(.milliseconds(2001)) == 3)
    }
}
