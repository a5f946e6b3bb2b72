import Baton
import CBatonProcess
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A command started by `baton run` in a process group of its own, and the stopping of that group.
///
/// `baton` forks a keeper (see `baton_prepare`), which leads the group and waits for ``launch(adding:)`` to start
/// the command in it (with `vfork`, which copies nothing), so a command prepared while `baton` waits for leadership
/// starts, once elected, without the cost of forking a large process. The keeper
/// holds the read end of a pipe whose write end only `baton` holds: when `baton` ends in any way — also after a
/// `kill -9` — the pipe reads end of file and the keeper kills the whole group with SIGKILL, so neither the command
/// nor anything it started in its group outlives `baton`. The keeper reports the command's wait status when it
/// ends, and itself ends once nothing else is left in the group (it reaps what the command left behind).
///
/// The keeper is also the command's watchdog, with a timer of its own on `CLOCK_BOOTTIME` (see ``BootTime``): the
/// launch passes the term's kill time and the grace, and ``extend(killAt:term:)`` later kill times after each
/// renewal. At the kill time less the grace the keeper sends the group SIGTERM (and SIGCONT), at the kill time
/// SIGKILL — whether `baton` runs, is stopped, hangs or starves. A launch whose SIGTERM time has passed when the
/// keeper reads it is refused (``LaunchOutcome/refused``).
///
/// Signals go to the whole group (`kill(-pid, signal)`), so a shell script and the programs it started stop
/// together; the keeper blocks them. A process that leaves the group (`setsid`, `setpgid`) is out of reach.
/// `baton` is made a child subreaper, so that processes of the group left when the keeper was killed are
/// re-parented to it and reaped.
final class ChildProcess: Sendable {
    /// How the command ended.
    struct Exit: Sendable, Hashable {
        /// The exit code, or 128 + the signal that ended the command (as a shell reports it).
        var code: Int32
        /// The signal that ended the command, if one did.
        var signal: Int32?
    }

    /// What came of a launch.
    enum LaunchOutcome: Sendable, Hashable {
        /// The command runs.
        case running
        /// The keeper refused to start the command: the SIGTERM time of its kill time had passed.
        case refused
    }

    /// Why a command could not be started.
    struct SpawnError: Error {
        /// The `errno` of the failure (of `exec` in the child, or of `fork` here).
        var errorNumber: Int32

        /// The exit status for this failure, as shells use it: 127 when the command was not found, else 126.
        var exitCode: Int32 { errorNumber == ENOENT || errorNumber == ENOTDIR ? 127 : 126 }

        /// The system's description of the error: `No such file or directory`.
        var reason: String { String(cString: strerror(errorNumber)) }
    }

    private struct State {
        var exit: Exit?
        var exitWaiters: [CheckedContinuation<Exit, Never>] = []
        /// When SIGKILL is due, once a stop was asked for.
        var killAt: ContinuousClock.Instant?
        /// The first signal a stop sent.
        var stopSignal: Int32?
        /// A stop began before the command's end was known.
        var stoppedWhileRunning = false
        /// SIGKILL was sent.
        var killed = false
        /// The write end of the launch pipe, until the launch or the abandonment closes it.
        var go: Int32 = -1
        /// The exec's outcome (0, or its errno), once known.
        var launchResult: Int32?
        var launchWaiters: [CheckedContinuation<Int32, Never>] = []
        /// The keeper has been reaped.
        var keeperReaped = false
        /// Tasks waiting for the keeper to be reaped, by id.
        var keeperWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextKeeperWaiter = 0
        /// No process of the group is left: from then on no signal is sent, since the id may be reused.
        var groupGone = false
        /// The write end of the pipe kill times go to the keeper through, until the keeper is reaped.
        var watchdog: Int32 = -1
        /// The term the command was launched for.
        var term: UInt64?
        /// The latest kill time the keeper was sent; nil before the launch and for a command without one.
        var keeperKillAt: BootTime?
        /// The grace the keeper was given.
        var keeperGrace: Duration = .zero
        /// The last signal the keeper's watchdog had sent when the command ended (SIGTERM or SIGKILL), if any.
        var watchdogSignal: Int32?
    }

    /// Held around each fork of a keeper. A keeper never calls exec, so it keeps every descriptor of `baton` not
    /// marked close-on-exec, as the command should; a process that starts other programs concurrently (the tests
    /// do, with Foundation's `Process`, whose exit is seen through a socket the child alone must hold) takes this
    /// lock around each start, so that no keeper is forked in between and holds such a descriptor.
    static let forkLock = Mutex(())

    /// The keeper's process id, also the process group id.
    let pid: pid_t
    private let state = Mutex(State())

    private init(pid: pid_t, go: Int32, watchdog: Int32) {
        self.pid = pid
        state.withLock { state in
            state.go = go
            state.watchdog = watchdog
        }
    }

    /// A throwaway instance (of no process) given a launch result once per process, so that the Swift runtime's
    /// first-time work for the types that uses is not done when a launch reports (see `LeaderElector`'s warm-up).
    private static let runtimeWarmUp: Int32? = {
        let unused = ChildProcess(pid: 0, go: -1, watchdog: -1)
        unused.recordLaunchResult(0)
        return unused.state.withLock { $0.launchResult }
    }()

    /// Starts `command` (`command[0]` is looked up in `PATH` unless it contains a slash) with `environment`.
    ///
    /// Standard input, output and error are shared with `baton`.
    /// - Throws: ``SpawnError`` if the command could not be executed (not found, not executable) or fork failed.
    static func spawn(_ command: [String], environment: [String: String]) async throws(SpawnError) -> ChildProcess {
        let child = try await prepare(command, environment: environment)
        _ = try await child.launch()
        return child
    }

    /// Makes `command` ready to start with `environment` (`command[0]` is looked up in `PATH` unless it contains a
    /// slash): the keeper is forked now, and starts the command at ``launch(adding:)``. A prepared command that is
    /// not to run must be given up with ``abandon()``, which ends the keeper without running anything (it also ends
    /// with `baton`).
    ///
    /// Standard input, output and error are shared with `baton`.
    /// - Throws: ``SpawnError`` if fork failed.
    static func prepare(_ command: [String], environment: [String: String]) async throws(SpawnError) -> ChildProcess {
        precondition(!command.isEmpty, "an empty command")
        _ = baton_become_subreaper()
        _ = runtimeWarmUp
        let paths = candidatePaths(for: command[0], searchPath: environment["PATH"])
        let variables = environment.map { "\($0.key)=\($0.value)" }.sorted()
        let prepared: Result<ChildProcess, SpawnError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                var status: Int32 = -1
                var lifeline: Int32 = -1
                var go: Int32 = -1
                var report: Int32 = -1
                var watchdog: Int32 = -1
                let pid = withCStrings(paths) { paths in
                    withCStrings(command) { argv in
                        // Spare slots for the entries the launch adds.
                        withCStrings(variables, spareSlots: Int(BATON_LAUNCH_ENTRIES_MAX)) { envp in
                            var failure: Int32 = 0
                            let pid = Self.forkLock.withLock { _ in
                                baton_prepare(paths, argv, envp, &status, &lifeline, &go, &report, &watchdog, &failure)
                            }
                            return pid > 0 ? pid : -failure
                        }
                    }
                }
                guard pid > 0 else {
                    continuation.resume(returning: .failure(SpawnError(errorNumber: -pid)))
                    return
                }
                let child = ChildProcess(pid: pid, go: go, watchdog: watchdog)
                continuation.resume(returning: .success(child))
                child.recordLaunchResult(baton_launch_result(report))
                close(report)
                var groupEmpty: Int32 = 0
                var watchdogSignal: Int32 = 0
                let commandStatus = baton_command_status(status, &groupEmpty, &watchdogSignal)
                close(status)
                if commandStatus >= 0 {
                    child.reaped(
                        commandStatus, groupEmpty: groupEmpty != 0,
                        watchdogSignal: watchdogSignal == 0 ? nil : watchdogSignal)
                    _ = baton_wait(pid)
                } else {
                    // The keeper was killed before the command's end reached it: the group went with it.
                    child.reaped(baton_wait(pid))
                }
                child.keeperReaped()
                // Only now: closing the lifeline while the keeper runs would kill the group.
                close(lifeline)
            }
            thread.name = "baton-child"
            thread.start()
        }
        return try prepared.get()
    }

    /// Where `name` is looked for, in order: itself if it contains a slash, else each directory of `searchPath`
    /// (default `/usr/local/bin:/usr/bin:/bin`; an empty entry is the current directory).
    static func candidatePaths(for name: String, searchPath: String?) -> [String] {
        if name.contains("/") { return [name] }
        let directories = (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(
            separator: ":", omittingEmptySubsequences: false)
        return directories.map { $0.isEmpty ? "./\(name)" : "\($0)/\(name)" }
    }

    // MARK: Launching

    /// Executes the prepared command, adding `entries` (`NAME=value`, without NUL; at most 4, of 508 bytes in all)
    /// to its environment, and returns once it runs, or was refused.
    ///
    /// - Parameters:
    ///   - term: the term the command runs in; ``extend(killAt:term:)`` must name it.
    ///   - killAt: when the keeper kills the group with SIGKILL (after SIGTERM `grace` earlier) unless a later kill
    ///     time arrives first; nil for none. The keeper refuses the launch if `killAt − grace` has passed when it
    ///     reads it.
    /// - Throws: ``SpawnError`` if the command could not be executed (not found, not executable), or the keeper
    ///   is gone.
    func launch(
        adding entries: [String] = [], term: UInt64 = 0, killAt: BootTime? = nil, grace: Duration = .zero
    ) async throws(SpawnError) -> LaunchOutcome {
        let written = sendLaunch(adding: entries, term: term, killAt: killAt, grace: grace)
        return try await launchOutcome(written: written)
    }

    /// Writes the launch (see ``launch(adding:term:killAt:grace:)``) and returns at once: 0, or the errno of the
    /// failed write. ``launchOutcome(written:)`` then waits for the keeper's answer. Does not block, so it can be
    /// called under a lock.
    func sendLaunch(adding entries: [String], term: UInt64, killAt: BootTime?, grace: Duration) -> Int32 {
        let go = takeLaunchPipe()
        precondition(go >= 0, "a command is launched once, and not after it was abandoned")
        state.withLock { state in
            state.term = term
            state.keeperKillAt = killAt
            state.keeperGrace = grace
        }
        precondition(entries.allSatisfy { !$0.utf8.contains(0) }, "an environment entry holds a NUL")
        // Each entry ended by a NUL, as the keeper adds them to the command's environment.
        var message: [UInt8] = []
        for entry in entries {
            message.append(contentsOf: entry.utf8)
            message.append(0)
        }
        return message.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { characters in
                baton_launch(
                    go, characters.baseAddress, characters.count, killAt?.nanoseconds ?? Int64.max,
                    grace.batonNanoseconds, term)
            }
        }
    }

    /// Waits for the keeper's answer to the launch ``sendLaunch(adding:term:killAt:grace:)`` wrote (`written`:
    /// what it returned).
    func launchOutcome(written: Int32) async throws(SpawnError) -> LaunchOutcome {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let known = state.withLock { state -> Int32? in
                if let result = state.launchResult { return result }
                state.launchWaiters.append(continuation)
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
        if result == BATON_LAUNCH_REFUSED { return .refused }
        if result != 0 { throw SpawnError(errorNumber: result) }
        // The write failed but no exec error came back: the keeper was gone before the launch.
        if written != 0 { throw SpawnError(errorNumber: written) }
        return .running
    }

    /// Moves the keeper's kill time of the command's term `term` on to `killAt` (SIGTERM `grace` earlier, the
    /// grace of the launch). Only ever later: a kill time earlier than the last one sent, of another term, or sent
    /// once the SIGTERM time of the last one has passed (the keeper may have sent it) is not sent. Returns whether
    /// it was sent. Never blocks (a keeper that does not read keeps the kill time it has).
    @discardableResult
    func extend(killAt: BootTime, term: UInt64) -> Bool {
        state.withLock { state in
            guard state.watchdog >= 0, state.term == term, let current = state.keeperKillAt, killAt > current,
                BootTime.now < current - state.keeperGrace
            else { return false }
            guard baton_extend(state.watchdog, term, killAt.nanoseconds) == 0 else { return false }
            state.keeperKillAt = killAt
            return true
        }
    }

    /// Whether the keeper refused the launch (see ``LaunchOutcome/refused``): the command never ran.
    var launchRefused: Bool { state.withLock { $0.launchResult == BATON_LAUNCH_REFUSED } }

    /// The latest kill time the keeper was sent, if any.
    var keeperKillAt: BootTime? { state.withLock { $0.keeperKillAt } }

    /// The last signal the keeper's watchdog had sent when the command ended (SIGTERM or SIGKILL), if any.
    var watchdogSignal: Int32? { state.withLock { $0.watchdogSignal } }

    /// Gives up a prepared command that was not launched: the keeper ends without running anything. A no-op after
    /// the launch.
    func abandon() {
        let go = takeLaunchPipe()
        if go >= 0 { close(go) }
    }

    /// The launch pipe's write end, once: -1 after the launch or the abandonment took it.
    private func takeLaunchPipe() -> Int32 {
        state.withLock { state in
            defer { state.go = -1 }
            return state.go
        }
    }

    private func recordLaunchResult(_ result: Int32) {
        let waiters = state.withLock { state in
            state.launchResult = result
            defer { state.launchWaiters = [] }
            return state.launchWaiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    // MARK: Waiting

    /// Waits until the command has ended, and returns how.
    func exit() async -> Exit {
        await withCheckedContinuation { continuation in
            let exit = state.withLock { state -> Exit? in
                if let exit = state.exit { return exit }
                state.exitWaiters.append(continuation)
                return nil
            }
            if let exit { continuation.resume(returning: exit) }
        }
    }

    /// Waits until the command has ended and no other process of its group is left, stopping those with SIGTERM
    /// and, `grace` later, SIGKILL. Returns how the command ended.
    ///
    /// Processes the command left behind in its group would otherwise run on after `baton` gave up leadership.
    /// The wait for them is bounded: a process that even SIGKILL does not remove within a second (a zombie whose
    /// parent does not reap it) is given up on.
    func exitWithGroup(grace: Duration) async -> Exit {
        let exit = await exit()
        // The keeper reports with the command's end whether the group is empty; if not, it ends itself a moment
        // after the rest of the group.
        if groupIsGone() { return exit }
        await waitForKeeper(milliseconds: 100)
        if groupIsGone() { return exit }
        stop(SIGTERM, grace: grace)
        let giveUp = ContinuousClock.now + grace + .seconds(1)
        while ContinuousClock.now < giveUp {
            await Self.pause(milliseconds: 10)
            if groupIsGone() { return exit }
        }
        return exit
    }

    /// Sleeps even if the task is cancelled: stopping the group must go on when the leadership that cancelled the
    /// task has ended.
    private static func pause(milliseconds: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) {
                continuation.resume()
            }
        }
    }

    /// Whether no process of the group is left; remembered once true. Reaps the group's processes that were
    /// re-parented here (see `baton_become_subreaper`) and have ended.
    private func groupIsGone() -> Bool {
        state.withLock { state in
            if state.groupGone { return true }
            guard state.exit != nil, state.keeperReaped else { return false }
            var status: Int32 = 0
            while waitpid(-pid, &status, WNOHANG) > 0 {}
            if kill(-pid, 0) != 0 && errno == ESRCH { state.groupGone = true }
            return state.groupGone
        }
    }

    private func keeperReaped() {
        let waiters = state.withLock { state in
            state.keeperReaped = true
            // Under the lock: ``extend(killAt:term:)`` writes to it under the lock, and the number may be reused.
            if state.watchdog >= 0 { close(state.watchdog) }
            state.watchdog = -1
            defer { state.keeperWaiters = [:] }
            return Array(state.keeperWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until the keeper has been reaped, or `milliseconds` have passed. The keeper ends as soon as its group
    /// is empty, which is at once after the command for a command that leaves nothing behind.
    private func waitForKeeper(milliseconds: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLock { state -> Int? in
                if state.keeperReaped { return nil }
                let id = state.nextKeeperWaiter
                state.nextKeeperWaiter += 1
                state.keeperWaiters[id] = continuation
                return id
            }
            guard let id else {
                continuation.resume()
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [self] in
                state.withLock { $0.keeperWaiters.removeValue(forKey: id) }?.resume()
            }
        }
    }

    /// The command ended with wait status `status`; `groupEmpty`: the keeper found nothing else of the group left
    /// (and ends itself), so no signal is sent to the group from now on.
    private func reaped(_ status: Int32, groupEmpty: Bool = false, watchdogSignal: Int32? = nil) {
        let exit =
            status < 0
            ? Exit(code: 1, signal: nil)
            : Exit(
                code: baton_exit_code(status), signal: baton_term_signal(status) == 0 ? nil : baton_term_signal(status))
        let waiters = state.withLock { state in
            if groupEmpty { state.groupGone = true }
            state.watchdogSignal = watchdogSignal
            state.exit = exit
            defer { state.exitWaiters = [] }
            return state.exitWaiters
        }
        for waiter in waiters { waiter.resume(returning: exit) }
    }

    // MARK: Stopping

    /// The first signal a stop sent, if any.
    var stopSignal: Int32? { state.withLock { $0.stopSignal } }

    /// Whether a stop began before the command's end was known: if not, the command ended by itself (a stop that
    /// came later only cleared what it left in its group).
    var wasStoppedWhileRunning: Bool { state.withLock { $0.stoppedWhileRunning } }

    /// Whether SIGKILL was sent.
    var wasKilled: Bool { state.withLock { $0.killed } }

    /// When SIGKILL is due, once a stop was asked for.
    var killDue: ContinuousClock.Instant? { state.withLock { $0.killAt } }

    /// Sends `signal` to the whole group now, and SIGKILL to it `grace` later unless an earlier SIGKILL is already
    /// due — and never later than the keeper's kill time: a term's command is killed by its absolute deadline, not
    /// by when the stop began. Safe to call from any thread (a cancellation handler, a signal handler's task) any
    /// number of times.
    ///
    /// - Parameter once: send `signal` only if no stop began before (a term's end is seen both by the cancellation of
    ///   its work and by the elector's event; the command gets one SIGTERM for it). SIGKILL is scheduled either way.
    func stop(_ signal: Int32, grace: Duration, once: Bool = false) {
        let now = ContinuousClock.now
        let bootNow = BootTime.now
        let (send, delay) = state.withLock { state -> (Bool, Duration?) in
            if state.killed || state.groupGone { return (false, nil) }
            let send = !once || state.stopSignal == nil
            if state.stopSignal == nil {
                state.stopSignal = signal
                state.stoppedWhileRunning = state.exit == nil
            }
            var delay = grace
            if let keeperKillAt = state.keeperKillAt { delay = max(.zero, min(delay, keeperKillAt - bootNow)) }
            let killAt = now + delay
            if let due = state.killAt, due <= killAt { return (send, nil) }
            state.killAt = killAt
            return (send, delay)
        }
        if send { kill(-pid, signal) }
        if let delay {
            if delay <= .zero {
                killNow()
                return
            }
            let microseconds = Int(max(0, delay.batonNanoseconds / 1000))
            DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(microseconds)) { [self] in
                killNow()
            }
        }
    }

    /// Sends `signal` to the whole group unless it is gone (job control: SIGTSTP, SIGCONT).
    func signalGroup(_ signal: Int32) {
        // While the keeper has not been reaped, the group id is still its own.
        if !groupIsGone() { kill(-pid, signal) }
    }

    /// Sends SIGKILL to the group once (the earliest scheduled kill sends it; later ones find it done).
    private func killNow() {
        let send = state.withLock { state -> Bool in
            if state.killed || state.groupGone { return false }
            state.killed = true
            return true
        }
        if send { kill(-pid, SIGKILL) }
    }
}

/// A time on the host's `CLOCK_BOOTTIME`, the clock `baton` and its keeper share (it counts on while the machine
/// sleeps, as `ContinuousClock` does on Linux).
struct BootTime: Sendable, Hashable, Comparable {
    /// Nanoseconds since the clock's origin (the boot).
    var nanoseconds: Int64

    /// The time now.
    static var now: BootTime { BootTime(nanoseconds: baton_boottime_ns()) }

    static func < (lhs: BootTime, rhs: BootTime) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    static func + (lhs: BootTime, rhs: Duration) -> BootTime {
        BootTime(nanoseconds: lhs.nanoseconds + rhs.batonNanoseconds)
    }

    static func - (lhs: BootTime, rhs: Duration) -> BootTime {
        BootTime(nanoseconds: lhs.nanoseconds - rhs.batonNanoseconds)
    }

    static func - (lhs: BootTime, rhs: BootTime) -> Duration { .nanoseconds(lhs.nanoseconds - rhs.nanoseconds) }
}

/// Calls `body` with a NULL-terminated array of C strings copied from `strings` (followed by `spareSlots` more
/// NULLs), valid for the call only.
private func withCStrings<R>(
    _ strings: [String],
    spareSlots: Int = 0,
    _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R
) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(contentsOf: repeatElement(nil, count: 1 + spareSlots))
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}
