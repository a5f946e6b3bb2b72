import Testing

@testable import Baton

/// A seeded discrete-event simulation of several electors (the production state machine) campaigning on one
/// simulated store, with drifting local clocks, delayed / lost / failed requests, partitions, crashes and
/// resignations. After every step it checks that at most one elector believes it leads, and that tokens
/// of successive beliefs never go back.
struct ElectorSimulation {
    struct Parameters {
        var electors = 3
        var duration: Int64 = 20_000_000_000  // ns of faults
        var calm: Int64 = 6_000_000_000  // ns without faults at the end, for the liveness check
        /// Local clock rates are drawn from 1 ± drift.
        var drift = 0.04
        var settings: ElectorStateMachine.Settings
    }

    struct Report {
        var violations: [String] = []
        var elections = 0
        var demotions: [String: Int] = [:]
        var leaderAtEnd = false
        /// Releases that reached the store while a live elector led under the released term: an earlier
        /// incarnation of the same holder (before a crash and restart) gave back a term its successor took again.
        var releasesOfALiveTerm = 0
    }

    enum Event {
        case storeAcquire(elector: Int, epoch: Int, id: UInt64)
        case storeRenew(elector: Int, epoch: Int, id: UInt64, lease: Lease)
        case storeRelease(lease: Lease)
        case deliver(elector: Int, epoch: Int, input: ElectorStateMachine.Input)
        case tick(elector: Int, epoch: Int)
        case expiryCheck
        case crash(elector: Int)
        case restart(elector: Int)
        case resign(elector: Int)
        case partition(elector: Int, hang: Bool, length: Int64)
        /// The elector's change feed (re)subscribes and reads the current leader.
        case feedSnapshot(elector: Int, epoch: Int)
    }

    struct Store {
        var holder: String?
        var token: FencingToken = 0
        var expiresAt: Int64 = 0
        var lastToken: FencingToken = 0

        func info(now: Int64) -> LeaderInfo? {
            guard let holder, expiresAt > now else { return nil }
            return LeaderInfo(holder: holder, token: token, remaining: .nanoseconds(expiresAt - now))
        }
    }

    struct Elector {
        var name: String
        var rate: Double
        var offset: Int64
        var epoch = 0
        var alive = true
        var machine: ElectorStateMachine
        var partitionedUntil: Int64 = -1
        var partitionHangs = false
        var believedToken: FencingToken?
        /// When the last feed observation is delivered: a feed is one ordered stream.
        var feedDeliveredAt: Int64 = 0
    }

    let parameters: Parameters
    var random: SplitMix64
    var now: Int64 = 0
    var sequence = 0
    var queue: [(at: Int64, seq: Int, event: Event)] = []
    var store = Store()
    var electors: [Elector] = []
    var report = Report()
    var lastBelievedToken: FencingToken = 0
    var lastBelievedHolder: String?
    // Fault rates for this schedule.
    let dropRequest: Double
    let dropReply: Double
    let failRate: Double
    let slowRate: Double

    init(seed: UInt64, parameters: Parameters) {
        self.parameters = parameters
        var random = SplitMix64(seed: seed)
        dropRequest = random.nextUnit() * 0.08
        dropReply = random.nextUnit() * 0.08
        failRate = random.nextUnit() * 0.2
        slowRate = random.nextUnit() * 0.1
        for index in 0..<parameters.electors {
            let rate = 1 + (random.nextUnit() * 2 - 1) * parameters.drift
            let offset = Int64(random.nextUnit() * 1e12)
            electors.append(
                Elector(
                    name: "e\(index)",
                    rate: rate,
                    offset: offset,
                    machine: ElectorStateMachine(settings: parameters.settings, seed: random.next())
                )
            )
        }
        self.random = random
    }

    // MARK: Time

    func local(_ elector: Int, at time: Int64) -> Duration {
        let e = electors[elector]
        return .nanoseconds(Int64((Double(time) * e.rate).rounded(.down)) + e.offset)
    }

    /// The first true time at which `elector`'s local clock reads at least `localTime`.
    func trueTime(_ elector: Int, reading localTime: Duration) -> Int64 {
        let e = electors[elector]
        var time = Int64((Double(localTime.batonNanoseconds - e.offset) / e.rate).rounded(.up))
        time = max(time, now)
        while local(elector, at: time) < localTime { time += 1 }
        return time
    }

    mutating func schedule(_ event: Event, at time: Int64) {
        sequence += 1
        let entry = (at: time, seq: sequence, event: event)
        var low = 0
        var high = queue.count
        while low < high {
            let mid = (low + high) / 2
            if queue[mid].at < time || (queue[mid].at == time && queue[mid].seq < sequence) {
                low = mid + 1
            } else {
                high = mid
            }
        }
        queue.insert(entry, at: low)
    }

    var faulty: Bool { now < parameters.duration }

    mutating func networkDelay() -> Int64 {
        if faulty, random.nextUnit() < slowRate {
            return Int64(random.nextUnit() * Double(parameters.settings.ttl.batonNanoseconds) * 1.5)
        }
        return 100_000 + Int64(random.nextUnit() * 20_000_000)
    }

    // MARK: Running

    mutating func run() -> Report {
        for index in electors.indices {
            let actions = electors[index].machine.start(now: local(index, at: now))
            apply(actions, elector: index)
            schedule(.feedSnapshot(elector: index, epoch: electors[index].epoch), at: now + networkDelay())
        }
        planFaults()
        let end = parameters.duration + parameters.calm
        var steps = 0
        while let first = queue.first, first.at <= end {
            queue.removeFirst()
            now = first.at
            process(first.event)
            check()
            steps += 1
            if steps > 2_000_000 {
                report.violations.append("the simulation did not settle (runaway events)")
                break
            }
        }
        report.leaderAtEnd = electors.contains { $0.alive && $0.machine.lease != nil }
        return report
    }

    mutating func planFaults() {
        let ttl = parameters.settings.ttl.batonNanoseconds
        var time: Int64 = 0
        while true {
            time += Int64(random.nextUnit() * Double(ttl) * 3)
            guard time < parameters.duration else { break }
            let elector = Int(random.next() % UInt64(electors.count))
            switch random.next() % 4 {
            case 0:
                schedule(.crash(elector: elector), at: time)
                schedule(.restart(elector: elector), at: time + Int64(random.nextUnit() * Double(ttl) * 2))
            case 1:
                schedule(.resign(elector: elector), at: time)
            default:
                let length = Int64(random.nextUnit() * Double(ttl) * 2.5)
                schedule(.partition(elector: elector, hang: random.next() % 2 == 0, length: length), at: time)
            }
        }
        for index in electors.indices {
            schedule(.restart(elector: index), at: parameters.duration)
        }
    }

    mutating func process(_ event: Event) {
        switch event {
        case .storeAcquire(let index, let epoch, let id):
            guard let succeeds = storeCall(index) else { return }
            let input: ElectorStateMachine.Input
            if !succeeds {
                input = .acquireFailed(id, .storeUnavailable("simulated failure"))
            } else if let leader = store.info(now: now), leader.holder != electors[index].name {
                input = .held(id, leader)
            } else {
                let ttl = parameters.settings.ttl.batonNanoseconds
                let changed = store.info(now: now) == nil
                if changed {
                    store.lastToken += 1
                    store.token = store.lastToken
                    store.holder = electors[index].name
                }
                store.expiresAt = now + ttl
                scheduleExpiryCheck()
                input = .acquired(
                    id, Lease(key: "k", holder: store.holder!, token: store.token, ttl: .nanoseconds(ttl)))
                if changed { broadcast() }
            }
            reply(to: index, epoch: epoch, input)

        case .storeRenew(let index, let epoch, let id, let lease):
            guard let succeeds = storeCall(index) else { return }
            let input: ElectorStateMachine.Input
            if !succeeds {
                input = .renewFailed(id, .storeUnavailable("simulated failure"))
            } else if let leader = store.info(now: now), leader.holder == lease.holder, leader.token == lease.token {
                store.expiresAt = now + parameters.settings.ttl.batonNanoseconds
                scheduleExpiryCheck()
                input = .renewed(id, lease)
            } else {
                input = .renewLost(id)
            }
            reply(to: index, epoch: epoch, input)

        case .storeRelease(let lease):
            if let leader = store.info(now: now), leader.holder == lease.holder, leader.token == lease.token {
                if electors.contains(where: { $0.alive && $0.machine.lease?.token == lease.token }) {
                    report.releasesOfALiveTerm += 1
                }
                store.holder = nil
                broadcast()
            }

        case .deliver(let index, let epoch, let input):
            guard electors[index].alive, electors[index].epoch == epoch else { return }
            let actions = electors[index].machine.handle(input, now: local(index, at: now))
            apply(actions, elector: index)

        case .tick(let index, let epoch):
            guard electors[index].alive, electors[index].epoch == epoch else { return }
            let actions = electors[index].machine.handle(.tick, now: local(index, at: now))
            apply(actions, elector: index)

        case .expiryCheck:
            if store.holder != nil, store.expiresAt <= now {
                store.holder = nil
                broadcast()
            }

        case .crash(let index):
            electors[index].alive = false
            electors[index].epoch += 1

        case .restart(let index):
            guard !electors[index].alive || electors[index].machine.isFinished else { return }
            electors[index].alive = true
            electors[index].epoch += 1
            electors[index].machine = ElectorStateMachine(settings: parameters.settings, seed: random.next())
            let actions = electors[index].machine.start(now: local(index, at: now))
            apply(actions, elector: index)
            schedule(.feedSnapshot(elector: index, epoch: electors[index].epoch), at: now + networkDelay())

        case .resign(let index):
            guard electors[index].alive else { return }
            let actions = electors[index].machine.handle(.resign, now: local(index, at: now))
            apply(actions, elector: index)

        case .partition(let index, let hang, let length):
            electors[index].partitionedUntil = now + length
            electors[index].partitionHangs = hang
            // The feed breaks with the connection, and is subscribed again once the partition heals.
            if electors[index].alive {
                let actions = electors[index].machine.handle(.feedLost, now: local(index, at: now))
                apply(actions, elector: index)
            }
            schedule(.feedSnapshot(elector: index, epoch: electors[index].epoch), at: now + length + networkDelay())

        case .feedSnapshot(let index, let epoch):
            guard electors[index].alive, electors[index].epoch == epoch else { return }
            if now < electors[index].partitionedUntil { return }
            electors[index].feedDeliveredAt = max(electors[index].feedDeliveredAt, now)
            let actions = electors[index].machine.handle(.observed(store.info(now: now)), now: local(index, at: now))
            apply(actions, elector: index)
        }
    }

    /// Whether a request from `index` reaches the store and succeeds (true), fails (false), or is lost (nil).
    mutating func storeCall(_ index: Int) -> Bool? {
        if now < electors[index].partitionedUntil {
            return electors[index].partitionHangs ? nil : false
        }
        if faulty, random.nextUnit() < failRate { return false }
        return true
    }

    mutating func reply(to index: Int, epoch: Int, _ input: ElectorStateMachine.Input) {
        if faulty, random.nextUnit() < dropReply { return }
        schedule(.deliver(elector: index, epoch: epoch, input: input), at: now + networkDelay())
    }

    mutating func scheduleExpiryCheck() {
        schedule(.expiryCheck, at: store.expiresAt)
    }

    /// The change feed: every elector whose feed is up hears of a new term, a release or an expiry, late but
    /// in order (a feed is one stream); a partitioned elector's feed is down and it hears nothing until it heals.
    mutating func broadcast() {
        let info = store.info(now: now)
        for index in electors.indices where electors[index].alive && now >= electors[index].partitionedUntil {
            let at = max(now + networkDelay(), electors[index].feedDeliveredAt)
            electors[index].feedDeliveredAt = at
            schedule(.deliver(elector: index, epoch: electors[index].epoch, input: .observed(info)), at: at)
        }
    }

    mutating func apply(_ actions: [ElectorStateMachine.Action], elector index: Int) {
        let epoch = electors[index].epoch
        for action in actions {
            switch action {
            case .acquire(let id):
                if faulty, random.nextUnit() < dropRequest { continue }
                schedule(.storeAcquire(elector: index, epoch: epoch, id: id), at: now + networkDelay())
            case .renew(let id, let lease):
                if faulty, random.nextUnit() < dropRequest { continue }
                schedule(.storeRenew(elector: index, epoch: epoch, id: id, lease: lease), at: now + networkDelay())
            case .release(let release), .finish(release: .some(let release)):
                // No work runs in the simulation: a release goes out at once.
                schedule(.storeRelease(lease: release.lease), at: now + networkDelay())
            case .schedule(let at):
                schedule(.tick(elector: index, epoch: epoch), at: trueTime(index, reading: at))
            case .elected:
                report.elections += 1
            case .demoted(_, let reason):
                report.demotions[reason.description, default: 0] += 1
            case .finish(release: nil), .leaderChanged, .storeError, .extended:
                break
            case .leaveQueue:
                // The simulated store keeps no queue (its machines run without one).
                break
            case .check(let id):
                // A waiting candidate's read of the store: it reflects the store when the reply arrives.
                if faulty, random.nextUnit() < dropRequest { continue }
                switch storeCall(index) {
                case true?: reply(to: index, epoch: epoch, .checked(id, store.info(now: now)))
                case false?: reply(to: index, epoch: epoch, .checkFailed(id, .storeUnavailable("unreachable")))
                case nil: break
                }
            case .checkPresence:
                // Quorum mode is off in the simulation (ElectorQuorumTests drives it).
                break
            }
        }
    }

    /// The invariant, checked after every step.
    mutating func check() {
        var believers: [Int] = []
        for index in electors.indices {
            let believes = electors[index].alive ? electors[index].machine.lease : nil
            if let lease = believes, electors[index].believedToken != lease.token {
                // A new belief begins: its token must not go back, and equal only for the same holder.
                if lease.token < lastBelievedToken
                    || (lease.token == lastBelievedToken && lastBelievedHolder != electors[index].name
                        && lastBelievedToken != 0)
                {
                    report.violations.append(
                        "t=\(now)ns: \(electors[index].name) leads with token \(lease.token) after token \(lastBelievedToken)"
                    )
                }
                lastBelievedToken = max(lastBelievedToken, lease.token)
                lastBelievedHolder = electors[index].name
            }
            electors[index].believedToken = believes?.token
            if believes != nil { believers.append(index) }
        }
        if believers.count > 1 {
            let names = believers.map { electors[$0].name }.joined(separator: ", ")
            report.violations.append("t=\(now)ns: \(believers.count) electors believe they lead: \(names)")
        }
    }
}

@Suite struct ElectorSimulationTests {
    static func settings(ttl: Duration = .seconds(1), margin: Duration = .milliseconds(100))
        -> ElectorStateMachine.Settings
    {
        ElectorStateMachine.Settings(
            ttl: ttl,
            renewInterval: ttl / 3,
            margin: margin,
            requestTimeout: ttl / 3,
            pollInterval: ttl / 2,
            backoff: .init(initial: .milliseconds(50), maximum: .seconds(1)),
            resignWait: .milliseconds(500)
        )
    }

    /// 400 seeded schedules with every fault; never two believers, tokens never back, and a leader once the
    /// faults stop.
    @Test func neverTwoLeadersUnderRandomFaults() {
        var elections = 0
        var demotions: [String: Int] = [:]
        var releasesOfALiveTerm = 0
        for seed in UInt64(1)...400 {
            var simulation = ElectorSimulation(
                seed: seed,
                parameters: .init(settings: Self.settings())
            )
            let report = simulation.run()
            #expect(report.violations.isEmpty, "seed \(seed): \(report.violations.prefix(3))")
            #expect(report.leaderAtEnd, "seed \(seed): no leader after the faults stopped")
            elections += report.elections
            releasesOfALiveTerm += report.releasesOfALiveTerm
            demotions.merge(report.demotions, uniquingKeysWith: +)
        }
        // The schedules must actually exercise every way of losing leadership.
        #expect(elections > 1_000)
        #expect(demotions["deadline_reached", default: 0] > 50)
        // A leader never hears from the store that its term ended (it always stopped before the store's expiry),
        // except when an earlier incarnation of its holder released the term it took again after a restart.
        #expect(demotions["lost", default: 0] <= releasesOfALiveTerm)
        #expect(demotions["resigned", default: 0] > 50)
    }

    /// The checker can fail: with clocks drifting by more than margin/ttl the safety rule no longer holds, and
    /// the simulation must find an overlap.
    @Test func theCheckerFindsOverlapsWhenClocksDriftBeyondTheMargin() {
        var found = 0
        for seed in UInt64(1)...60 {
            var parameters = ElectorSimulation.Parameters(settings: Self.settings(margin: .milliseconds(1)))
            parameters.drift = 0.4
            var simulation = ElectorSimulation(seed: seed, parameters: parameters)
            let violations = simulation.run().violations
            if violations.contains(where: { $0.contains("believe they lead") }) { found += 1 }
        }
        #expect(found > 0)
    }
}
