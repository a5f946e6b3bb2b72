#ifndef C_BATON_PROCESS_H
#define C_BATON_PROCESS_H

#include <stdint.h>
#include <sys/types.h>

/// Makes a command for `baton run` ready to start under a keeper process, so that nothing of it outlives `baton`,
/// and so that starting it later (`baton_launch`) costs no fork of `baton`: only a `vfork` of the keeper and the
/// command's own exec and start-up.
///
/// Forks the keeper, which
///
/// - becomes the leader of a new process group (so the whole group can be signalled with `kill(-pid, sig)`);
/// - closes the descriptors marked close-on-exec (it never calls exec itself), becomes a child subreaper and blocks
///   every signal (signals sent to the group are for the command);
/// - waits for `baton_launch` on the `*go_out` pipe, which passes one more environment entry (or none); end of
///   file there without a launch (the command was abandoned: `baton` closed `*go_out` or ended) ends the keeper
///   with status 0, having run nothing;
/// - then adds that entry to `envp` and starts the command in its group with `vfork`: the command's process
///   restores the default disposition of every signal and an empty signal mask, and executes
///   `paths[0]`, `paths[1]`, ... in turn (the candidates of a PATH search, built by the caller) with `argv` and
///   `envp`, as `execvp` does: a candidate that does not exist is skipped; a candidate that exists but cannot be
///   executed is remembered (EACCES) and skipped;
/// - writes the command's raw wait status to `*status_out` when it ends, with whether the group is empty by then
///   (read both with `baton_command_status`), then stays until no other process of its group is left, reaping
///   what the command left behind;
/// - holds the read end of a pipe whose only write end is `*lifeline_out`: when that reads end of file, because
///   `baton` ended in any way (also SIGKILL) or closed it, the keeper kills the whole group with SIGKILL;
/// - is the command's watchdog, with its own timer on `CLOCK_BOOTTIME` (see `baton_boottime_ns`): the launch
///   passes a kill time and a grace, and `baton_extend` later kill times; at the kill time less the grace the
///   keeper sends SIGTERM and then SIGCONT to the group (a stopped process takes SIGTERM once continued), at the
///   kill time SIGKILL, whatever `baton` does meanwhile (it may be stopped, hung or starved). A launch whose
///   SIGTERM time has already passed when the keeper reads it is refused: nothing runs.
///
/// In the keeper (which never calls exec) and between `vfork` and `exec` only async-signal-safe functions are
/// called. An exec failure is reported through the pipe `*report_out` (see `baton_launch_result`).
///
/// @param paths a NULL-terminated list of candidate executable paths, at least one.
/// @param argv the NULL-terminated argument vector (argv[0] is the command's name).
/// @param envp the environment, ending with *two* NULLs: the first is the slot for the entry `baton_launch` passes.
/// @param status_out set, on success, to the descriptor the command's wait status arrives on (close-on-exec).
/// @param lifeline_out set, on success, to the lifeline's write end (close-on-exec): close it only once the keeper
///   has been reaped, or to kill the group.
/// @param go_out set, on success, to the write end of the pipe the launch goes through (close-on-exec); closing
///   it without `baton_launch` abandons the command.
/// @param report_out set, on success, to the read end of the exec report (close-on-exec).
/// @param watchdog_out set, on success, to the write end (close-on-exec, non-blocking) of the pipe later kill times
///   go through (`baton_extend`); close it once the keeper has been reaped.
/// @param error_out set to the errno of the failure when -1 is returned.
/// @return the keeper's pid (also the process group id), or -1.
pid_t baton_prepare(
    char *const *paths, char *const *argv, char **envp, int *status_out, int *lifeline_out, int *go_out,
    int *report_out, int *watchdog_out, int *error_out);

/// The most bytes of environment entries `baton_launch` passes (with the NUL after each).
#define BATON_LAUNCH_ENTRIES_BYTES 512

/// The most environment entries `baton_launch` passes: `envp` of `baton_prepare` needs this many spare NULL slots
/// before its terminating NULL.
#define BATON_LAUNCH_ENTRIES_MAX 4

/// A kill time meaning none: the watchdog never fires (a command not bound to a term).
#define BATON_NO_KILL_TIME INT64_MAX

/// What `baton_launch_result` returns when the keeper refused the launch: its SIGTERM time had passed.
#define BATON_LAUNCH_REFUSED (-1)

/// The time on `CLOCK_BOOTTIME` in nanoseconds: the clock the keeper's watchdog runs on, shared by every process of
/// the host, which keeps counting while the machine sleeps (`CLOCK_MONOTONIC` where it does not exist).
int64_t baton_boottime_ns(void);

/// Starts the command `baton_prepare` made ready, adding `entries` to its environment: `length` bytes holding up to
/// `BATON_LAUNCH_ENTRIES_MAX` entries `NAME=value`, each ended by a NUL (at most `BATON_LAUNCH_ENTRIES_BYTES` in
/// all; 0 for none), and closes `go`. Does not wait for the exec.
///
/// `kill_ns` (on the clock of `baton_boottime_ns`, or `BATON_NO_KILL_TIME`) is when the keeper SIGKILLs the group,
/// and `grace_ns` how long before it SIGTERMs it; `term` names the term, which every later `baton_extend` must name.
/// The keeper refuses the launch if `kill_ns − grace_ns` has passed when it reads it (`baton_launch_result` then
/// returns `BATON_LAUNCH_REFUSED`).
/// Returns 0, or the errno of the failed write (EPIPE: the keeper is gone; no SIGPIPE is raised).
int baton_launch(int go, const char *entries, size_t length, int64_t kill_ns, int64_t grace_ns, uint64_t term);

/// Sends the keeper a later kill time for term `term` on `watchdog_fd` (the `watchdog_out` of `baton_prepare`). The
/// keeper keeps the latest kill time of the launched term, and ignores one of another term, one earlier than it has,
/// and any once it has sent SIGTERM. Never blocks. Returns 0, or the errno of the failed write (EAGAIN: the pipe is
/// full because the keeper is not reading, EPIPE: the keeper is gone; no SIGPIPE is raised).
int baton_extend(int watchdog_fd, uint64_t term, int64_t kill_ns);

/// Waits until the keeper has started the command or given up, reading the `report_out` descriptor of
/// `baton_prepare`: 0 when the command was executed (or the keeper ended without a launch, or was killed),
/// `BATON_LAUNCH_REFUSED` when the keeper refused the launch, else the errno of the failed exec (ENOENT: not found;
/// EACCES: not executable) or of the failed vfork.
int baton_launch_result(int report_fd);

/// Waits for the command's end and returns its raw wait status, read from the `status_out` descriptor of
/// `baton_prepare`, or -1 if the keeper ended without reporting one (it was killed, or the command was abandoned):
/// then its own status tells. Sets `*group_empty_out` to 1 when nothing else of the group was left at the
/// command's end (the keeper then ends by itself at once), else 0, and `*watchdog_signal_out` to the last signal
/// the watchdog had sent by then (SIGTERM or SIGKILL), else 0.
int baton_command_status(int status_fd, int *group_empty_out, int *watchdog_signal_out);

/// Makes this process a child subreaper (Linux): processes of a command's group whose keeper was killed are
/// re-parented here rather than to init, so they can be reaped here with `waitpid(-pgid, ...)` and never linger
/// as zombies in the command's process group (a container's init may not reap them). Returns 0, or -1 with errno.
int baton_become_subreaper(void);

/// Waits for the child `pid` to end (retrying on EINTR) and returns its raw wait status, or -1 with errno.
int baton_wait(pid_t pid);

/// Decodes a raw wait status: the exit code if the child exited, else 128 + the signal that ended it.
int baton_exit_code(int status);

/// The signal that ended the child, or 0 if it exited.
int baton_term_signal(int status);

/// Lowers the CPU priority of every thread of this process to `nice_value` (0–19, higher is lower), and with it
/// of the threads they start later. On Linux each thread has a nice value of its own, so every thread listed in
/// `/proc/self/task` is set. Returns the number of threads set, or -1 with errno if none could be.
int baton_lower_priority(int nice_value);

#endif
