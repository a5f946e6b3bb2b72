#ifndef C_BATON_PROCESS_H
#define C_BATON_PROCESS_H

#include <sys/types.h>

/// Starts a command for `baton run`: forks a child that
///
/// - becomes the leader of a new process group (so the whole group can be signalled with `kill(-pid, sig)`);
/// - on Linux, asks for SIGKILL when the thread that forked it ends (`PR_SET_PDEATHSIG`), and exits at once if
///   that parent is already gone, so the command never outlives `baton`;
/// - restores the default disposition of every signal and an empty signal mask;
/// - executes `paths[0]`, `paths[1]`, ... in turn (the candidates of a PATH search, built by the caller) with
///   `argv` and `envp`, as `execvp` does: a candidate that does not exist is skipped; a candidate that exists but
///   cannot be executed is remembered (EACCES) and skipped.
///
/// Between `fork` and `exec` the child calls only async-signal-safe functions. An exec failure is reported to
/// the parent through a close-on-exec pipe; the failed child is then reaped here.
///
/// The thread calling this must live until the child has been reaped: Linux sends the parent-death signal when
/// the forking *thread* ends.
///
/// @param paths a NULL-terminated list of candidate executable paths, at least one.
/// @param argv the NULL-terminated argument vector (argv[0] is the command's name).
/// @param envp the NULL-terminated environment.
/// @param error_out set to the errno of the failure when -1 is returned.
/// @return the child's pid (also its process group id), or -1.
pid_t baton_spawn(char *const *paths, char *const *argv, char *const *envp, int *error_out);

/// Makes this process a child subreaper (Linux): processes that a command leaves behind and whose parent ends are
/// re-parented here rather than to init, so they can be reaped here with `waitpid(-pgid, ...)` and never linger
/// as zombies in the command's process group (a container's init may not reap them). Returns 0, or -1 with errno.
int baton_become_subreaper(void);

/// Waits for the child `pid` to end (retrying on EINTR) and returns its raw wait status, or -1 with errno.
int baton_wait(pid_t pid);

/// Decodes a raw wait status: the exit code if the child exited, else 128 + the signal that ended it.
int baton_exit_code(int status);

/// The signal that ended the child, or 0 if it exited.
int baton_term_signal(int status);

#endif
