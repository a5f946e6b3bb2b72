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
            lease: lease, ttlSeconds: ttlSeconds, revision: revision, leading: leading, metadata: metadata,
            lastTry: lastTry, lastKeepAlive: keptAliveAt)
    }

    static func candidate(
        lease: Int64?, revision: Int64, holder: String? = nil, waiting: Bool = false, value: String = ""
    ) -> EtcdLeaseStore.Candidate {
        EtcdLeaseStore.Candidate(
            key: Data("k/\(lease ?? 0)".utf8), revision: revision, lease: lease, value: value, holder: holder,
            waiting: waiting)
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

    @Test("a handover shown by the watch starts the term after a read only while the lease is surely alive")
    func attemptAfterAHandover() {
        let handedToMe = [Self.candidate(lease: 7, revision: 20, holder: "me")]
        let now = Duration.seconds(100)
        let fresh = Self.campaign(keptAliveAt: now - .seconds(1))
        #expect(
            Machine.attempt(fresh, ttl: .seconds(10), metadata: nil, view: handedToMe, now: now)
                == .confirmHandover(sure: .seconds(9)))
        // The last keep-alive is too old: a keep-alive goes out with the check.
        let stale = Self.campaign(keptAliveAt: now - .seconds(6))
        #expect(
            Machine.attempt(stale, ttl: .seconds(10), metadata: nil, view: handedToMe, now: now)
                == .keepAliveAndCheckHandover)
        // No fresh view, or a view where this candidate still waits: a keep-alive and a check too.
        #expect(
            Machine.attempt(fresh, ttl: .seconds(10), metadata: nil, view: nil, now: now) == .keepAliveAndCheckHandover)
        let waiting = [Self.candidate(lease: 7, revision: 20, holder: "me", waiting: true)]
        #expect(
            Machine.attempt(fresh, ttl: .seconds(10), metadata: nil, view: waiting, now: now)
                == .keepAliveAndCheckHandover)
        // New metadata is written, and a leader renews with a write.
        #expect(
            Machine.attempt(fresh, ttl: .seconds(10), metadata: "m", view: handedToMe, now: now) == .keepAliveAndLead)
        #expect(
            Machine.attempt(
                Self.campaign(leading: true), ttl: .seconds(10), metadata: nil, view: handedToMe, now: now)
                == .keepAliveAndLead)
    }

    // MARK: Starting an acquire

    @Test("a waiting candidate the fresh view shows behind another is refused without a request")
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
        guard case .held(let leader) = machine.startAcquire(Self.id, ttl: .seconds(10), view: queue, now: .seconds(4))
        else {
            Issue.record("not refused from the view")
            return
        }
        #expect(leader.holder == "leader" && leader.token == 10)
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
        let moved = machine.moved(Self.id, from: old, to: 8, ttlSeconds: 3, grantedAt: .seconds(2))
        #expect(moved.lease == 8 && moved.ttlSeconds == 3 && moved.lastKeepAlive == .seconds(2))
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
        #expect(handed?.holder == "b" && handed?.lease == 7 && handed?.candidate.revision == 20)
        #expect(Machine.successor(of: leader, view: nil) == nil, "no fresh view")
        #expect(Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10)]) == nil, "no one next")
        let etcdctl = Self.candidate(lease: 7, revision: 20, holder: nil, value: "proposal")
        #expect(Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10), etcdctl]) == nil)
        let taken = Self.candidate(lease: 7, revision: 20, holder: "b", waiting: false)
        #expect(Machine.successor(of: leader, view: [Self.candidate(lease: 3, revision: 10), taken]) == nil)
        #expect(Machine.successor(of: leader, view: [next]) == nil, "the leader is not the head")
    }

    // MARK: Upkeep

    @Test("a waiting candidate whose holder stopped trying and follows nothing is abandoned after its ttl")
    func abandonment() {
        var machine = Machine()
        machine.joined(
            Self.id, Self.campaign(lease: 7, ttlSeconds: 10, lastTry: .seconds(100), keptAliveAt: .seconds(100)))
        let answer1 = machine.upkeep(now: .seconds(110), watched: [])
        #expect(answer1.revoke.isEmpty, "exactly a ttl: not yet")
        let answer2 = machine.upkeep(now: .seconds(111), watched: ["k"])
        #expect(answer2.revoke.isEmpty, "its key is followed here")
        #expect(machine.campaigns[Self.id] != nil)
        let answer3 = machine.upkeep(now: .seconds(111), watched: ["other"])
        #expect(answer3.revoke == [7])
        #expect(machine.campaigns[Self.id] == nil)
    }

    @Test("waiting candidates' leases get a keep-alive every third of their TTL; leaders' do not")
    func keepAlives() {
        var machine = Machine()
        machine.joined(Self.id, Self.campaign(lease: 7, ttlSeconds: 9, lastTry: .zero, keptAliveAt: .zero))
        let leader = Machine.CampaignID(key: "k2", holder: "me")
        machine.joined(leader, Self.campaign(lease: 8, ttlSeconds: 9, leading: true))
        let answer4 = machine.upkeep(now: .milliseconds(2999), watched: [])
        #expect(answer4.keepAlive.isEmpty)
        let answer5 = machine.upkeep(now: .seconds(3), watched: [])
        #expect(answer5.keepAlive.map(\.lease) == [7])
        machine.keptAlive(Self.id, lease: 7, sentAt: .seconds(3))
        let answer6 = machine.upkeep(now: .seconds(5), watched: ["k"])
        #expect(answer6.keepAlive.isEmpty)
        let answer7 = machine.upkeep(now: .seconds(6), watched: ["k"])
        #expect(answer7.keepAlive.map(\.lease) == [7])
    }

    @Test("the lease of a leader that handed its key over is revoked after the delay, not before")
    func delayedRevoke() {
        var machine = Machine()
        machine.revokeLater(5, now: .seconds(10))
        let answer8 = machine.upkeep(now: .seconds(10) + .milliseconds(499), watched: [])
        #expect(answer8.revoke.isEmpty)
        let answer9 = machine.upkeep(now: .seconds(10) + .milliseconds(500), watched: [])
        #expect(answer9.revoke == [5])
        let answer10 = machine.upkeep(now: .seconds(11), watched: [])
        #expect(answer10.revoke.isEmpty, "revoked once")
    }

    @Test("closing hands back every lease: candidates' and pending revokes'")
    func close() {
        var machine = Machine()
        machine.joined(Self.id, Self.campaign(lease: 7))
        machine.revokeLater(5, now: .zero)
        let leases = machine.close()
        #expect(Set(leases) == [5, 7])
        let again = machine.close()
        #expect(machine.campaigns.isEmpty && again.isEmpty)
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
