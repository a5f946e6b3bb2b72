import Baton
import Synchronization

/// A semaphore end to end on a real store: `candidates` holders of a semaphore of `permits`, spread over the
/// given store instances (standing for processes), each taking a permit `rounds` times and working a little in it.
///
/// Checks, while they run: never more than `permits` bodies at once, never two in one slot, every slot's tokens
/// rising from term to term (a holder whose release failed may take up the same term again); that every candidate gets its turns (a freed slot goes to a waiter); and that a
/// candidate asking for another number of permits is refused while the semaphore is in use. Throws a
/// ``ConformanceFailure`` naming what went wrong; each wait is bounded by `timeout` of real time.
public enum SemaphoreScenario {
    /// What the bodies saw, recorded under a lock as they enter and leave.
    final class Ledger: Sendable {
        struct State {
            var working = 0
            var mostWorking = 0
            var bySlot: [Int: String] = [:]
            var lastToken: [Int: (token: FencingToken, holder: String)] = [:]
            var permitsTaken = 0
            var violations: [String] = []
        }

        let state = Mutex(State())

        func enter(_ permit: Permit, holder: String, permits: Int) {
            state.withLock { state in
                state.working += 1
                state.mostWorking = max(state.mostWorking, state.working)
                state.permitsTaken += 1
                if state.working > permits {
                    state.violations.append("\(state.working) holders worked at once in a semaphore of \(permits)")
                }
                if let other = state.bySlot[permit.slot] {
                    state.violations.append("\(holder) and \(other) worked in slot \(permit.slot) at once")
                }
                state.bySlot[permit.slot] = holder
                // Equal only for a holder taking up its own term again (its release was not answered: the same
                // term, not a new one).
                if let last = state.lastToken[permit.slot],
                    permit.token < last.token || (permit.token == last.token && last.holder != holder)
                {
                    state.violations.append(
                        "slot \(permit.slot)'s token went from \(last.token) (\(last.holder)) to \(permit.token) "
                            + "(\(holder))")
                }
                state.lastToken[permit.slot] = (permit.token, holder)
            }
        }

        func leave(_ permit: Permit) {
            state.withLock { state in
                state.working -= 1
                state.bySlot[permit.slot] = nil
            }
        }
    }

    /// Runs the scenario; returns the most bodies that worked at once.
    @discardableResult
    public static func run(
        stores: [LeaseStore],
        permits: Int = 2,
        candidates: Int = 5,
        rounds: Int = 3,
        ttl: Duration = .seconds(2),
        work: Duration = .milliseconds(30),
        timeout: Duration = .seconds(60)
    ) async throws -> Int {
        precondition(!stores.isEmpty && candidates > permits)
        let key = Conformance.unique("semaphore")
        // A release slow under load (a loaded CI machine) still lands before the check that everything was released.
        let configuration = ElectorConfiguration(ttl: ttl, releaseTimeout: ttl)
        let ledger = Ledger()
        let electors = try (0..<candidates).map { index in
            try SemaphoreElector(
                store: stores[index % stores.count], key: key, holder: "c\(index)", permits: permits,
                configuration: configuration)
        }
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            for (index, elector) in electors.enumerated() {
                group.addTask {
                    for round in 0..<rounds {
                        try await elector.withPermit { permit in
                            ledger.enter(permit, holder: elector.holder, permits: permits)
                            defer { ledger.leave(permit) }
                            try await Task.sleep(for: work)
                            // While the semaphore is in use, a candidate asking for another number is refused.
                            if index == 0 && round == 0 {
                                try await refusesAnotherNumber(
                                    elector.store, key: key, permits: permits, configuration: configuration)
                            }
                        }
                    }
                    return true
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            var done = 0
            while let result = try await group.next() {
                guard result else { break }
                done += 1
                if done == candidates { break }
            }
            group.cancelAll()
            return done
        }
        let state = ledger.state.withLock { $0 }
        try expect(state.violations.isEmpty, state.violations.prefix(5).joined(separator: "; "))
        try expect(
            finished == candidates,
            "only \(finished) of \(candidates) candidates took their \(rounds) permits within \(timeout) "
                + "(\(state.permitsTaken) permits taken)")
        try expect(state.mostWorking <= permits, "\(state.mostWorking) holders worked at once")
        for (index, slotKey) in electors[0].slotKeys.enumerated() {
            let left = try await stores[0].current(key: slotKey)
            try expect(
                left == nil, "slot \(index) is still held after every candidate finished: \(String(describing: left))")
        }
        return state.mostWorking
    }

    /// Checks that a candidate asking for `permits + 1` is refused (called by a holder, so the semaphore is in use).
    static func refusesAnotherNumber(
        _ store: LeaseStore, key: String, permits: Int, configuration: ElectorConfiguration
    ) async throws {
        let other = try SemaphoreElector(
            store: store, key: key, holder: "other-number", permits: permits + 1, configuration: configuration)
        do {
            try await other.withPermit { _ in }
            throw ConformanceFailure(
                "a candidate asking for \(permits + 1) permits of a semaphore of \(permits) got one")
        } catch let error as BatonError where error.code == .invalidArgument {
            try expect(
                error.message.contains("in use with \(permits) permits"), "the refusal says: \(error.message)")
        }
    }
}
