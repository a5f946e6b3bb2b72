import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The ``RunSupervisor``s of `baton run --shards`, one per shard this member runs: passes each stop and job-control
/// signal to all of them, ends the work of a shard that moves away as a stop signal would (SIGTERM to its command,
/// SIGKILL after the grace, then the release), and keeps the status `baton` exits with.
final class ShardSupervisors: Sendable {
    private struct State {
        var supervisors: [Int: RunSupervisor] = [:]
        /// Shards whose work is to end (moved away) before or after their supervisor is registered.
        var ending: Set<Int> = []
        /// The first stop signal received.
        var stopSignal: Int32?
        /// The status of the command whose end ended the member (without --retry, the first to end by itself).
        var status: Int32?
    }

    private let state = Mutex(State())

    /// The first stop signal received, if any.
    var stopSignal: Int32? { state.withLock { $0.stopSignal } }

    /// The status the member ends with: that of the first command that ended by itself, if any.
    var status: Int32? { state.withLock { $0.status } }

    /// Adds the supervisor of `shard`; a stop signal received before, or an end asked for the shard, reaches it now.
    func add(_ shard: Int, _ supervisor: RunSupervisor) {
        let (signal, ending) = state.withLock { state in
            state.supervisors[shard] = supervisor
            return (state.stopSignal, state.ending.contains(shard))
        }
        if let signal {
            supervisor.received(signal)
        } else if ending {
            supervisor.received(SIGTERM)
        }
    }

    /// Removes the supervisor of `shard` once its work has ended; returns whether that end was asked for (the shard
    /// moved away, or the member stops).
    func remove(_ shard: Int) -> Bool {
        state.withLock { state in
            state.supervisors[shard] = nil
            return state.ending.remove(shard) != nil || state.stopSignal != nil || state.status != nil
        }
    }

    /// Ends the work of `shard`, which moved away (or the member stops): its command gets SIGTERM and, after the
    /// grace, SIGKILL; its elector resigns once the command has ended (at once while it waits).
    func end(_ shard: Int) {
        let supervisor = state.withLock { state in
            state.ending.insert(shard)
            return state.supervisors[shard]
        }
        supervisor?.received(SIGTERM)
    }

    /// A command ended by itself (or its term was lost, without --retry) with `status`: the member ends with it, and
    /// every other shard's work is ended.
    func finished(_ shard: Int, status: Int32) {
        let others = state.withLock { state in
            if state.status == nil { state.status = status }
            return state.supervisors.filter { $0.key != shard }.map(\.value)
        }
        for supervisor in others { supervisor.received(SIGTERM) }
    }

    /// `baton` received a stop signal: every shard's command gets it.
    func received(_ signal: Int32) {
        let supervisors = state.withLock { state in
            if state.stopSignal == nil { state.stopSignal = signal }
            return Array(state.supervisors.values)
        }
        for supervisor in supervisors { supervisor.received(signal) }
    }

    /// `baton` received a job-control signal: every shard's command group gets it, then `baton` stops itself once
    /// (for SIGTSTP, SIGTTIN and SIGTTOU).
    func jobControl(_ signal: Int32) {
        let supervisors = state.withLock { Array($0.supervisors.values) }
        for supervisor in supervisors { supervisor.jobControl(signal) }
        if signal != SIGCONT { raise(SIGSTOP) }
    }
}
