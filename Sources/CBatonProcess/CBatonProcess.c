#define _GNU_SOURCE
#include "CBatonProcess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

/// Writes all of `size` bytes, retrying on EINTR (async-signal-safe).
static void write_fully(int fd, const void *buffer, size_t size) {
    const char *bytes = buffer;
    while (size > 0) {
        ssize_t written = write(fd, bytes, size);
        if (written < 0) {
            if (errno == EINTR) continue;
            return;
        }
        bytes += written;
        size -= (size_t)written;
    }
}

/// Reads up to `size` bytes, retrying on EINTR; returns how many arrived before end of file or an error.
static size_t read_fully(int fd, void *buffer, size_t size) {
    size_t received = 0;
    while (received < size) {
        ssize_t count = read(fd, (char *)buffer + received, size - received);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        received += (size_t)count;
    }
    return received;
}

/// Sets the disposition of every signal to the default (async-signal-safe).
static void reset_signal_dispositions(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    for (int signal_number = 1; signal_number < NSIG; signal_number++) {
        sigaction(signal_number, &action, NULL);  // fails harmlessly for SIGKILL, SIGSTOP and reserved signals
    }
}

static int is_kept(int fd, const int *keep, int keep_count) {
    for (int index = 0; index < keep_count; index++) {
        if (keep[index] == fd) return 1;
    }
    return 0;
}

/// Closes every descriptor marked close-on-exec except those in `keep`: the keeper never calls exec, so it closes
/// itself what exec would have closed (the store connections and files of `baton`). Async-signal-safe: on Linux the
/// open descriptors are read from /proc/self/fd with the raw getdents64 system call; else (or without /proc) every
/// number up to `max_fd` is tried.
static void close_cloexec_descriptors(const int *keep, int keep_count, int max_fd) {
#ifdef __linux__
    int directory = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory >= 0) {
        char buffer[4096];
        for (;;) {
            long count = syscall(SYS_getdents64, directory, buffer, sizeof buffer);
            if (count <= 0) break;
            for (long offset = 0; offset < count;) {
                // struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name.
                unsigned short length;
                memcpy(&length, buffer + offset + 16, sizeof length);
                const char *name = buffer + offset + 19;
                offset += length;
                if (name[0] < '0' || name[0] > '9') continue;
                int fd = 0;
                for (const char *digit = name; *digit >= '0' && *digit <= '9'; digit++) fd = fd * 10 + (*digit - '0');
                if (fd <= 2 || fd == directory || is_kept(fd, keep, keep_count)) continue;
                int flags = fcntl(fd, F_GETFD);
                if (flags >= 0 && (flags & FD_CLOEXEC)) close(fd);
            }
        }
        close(directory);
        return;
    }
#endif
    for (int fd = 3; fd < max_fd; fd++) {
        if (is_kept(fd, keep, keep_count)) continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && (flags & FD_CLOEXEC)) close(fd);
    }
}

/// The command between vfork and exec: async-signal-safe calls only, and it shares the keeper's memory, so it
/// touches none but `failure`. Tries each path in turn as `execvp` does; if none can be executed, leaves the errno
/// in `*failure` for the keeper and ends with status 127.
static void exec_command(volatile int *failure, char *const *paths, char *const *argv, char *const *envp) {
    int error = ENOENT;
    int denied = 0;
    for (char *const *path = paths; *path != NULL; path++) {
        execve(*path, argv, envp);
        switch (errno) {
        case ENOENT:
        case ENOTDIR:
        case ESTALE:
        case ENODEV:
        case ETIMEDOUT:
            continue;
        case EACCES:
            denied = 1;
            continue;
        default:
            error = errno;
            break;
        }
        break;
    }
    if (error == ENOENT && denied) error = EACCES;
    *failure = error;
    _exit(127);
}

static void on_child(int signal_number) { (void)signal_number; }

/// The environment entry the launch passed (static: the keeper allocates nothing).
static char launch_entry[BATON_LAUNCH_ENTRY_MAX + 1];

/// The keeper before the launch: waits (every signal blocked) for the launch message on `go` (a length, then that
/// many bytes of environment entry) and adds the entry to `envp`, whose spare slot is its first NULL. Ends the
/// keeper, having run nothing, on end of file at `go` before a whole message (the command was abandoned) or at
/// `lifeline` (`baton` is gone).
static void await_launch(int go, int lifeline, char **envp) {
    struct pollfd watched[2] = {
        {.fd = go, .events = POLLIN, .revents = 0},
        {.fd = lifeline, .events = POLLIN, .revents = 0},
    };
    while (poll(watched, 2, -1) < 0) {
        if (errno != EINTR) _exit(0);
    }
    if (watched[1].revents != 0 && watched[0].revents == 0) _exit(0);
    uint32_t length = 0;
    if (read_fully(go, &length, sizeof length) != sizeof length || length > BATON_LAUNCH_ENTRY_MAX) _exit(0);
    if (read_fully(go, launch_entry, length) != length) _exit(0);
    launch_entry[length] = '\0';
    close(go);
    if (length > 0) {
        size_t slot = 0;
        while (envp[slot] != NULL) slot++;
        envp[slot] = launch_entry;
    }
}

/// The keeper: the process `baton` forks. It never calls exec, so, forked from a process with threads, it calls
/// only async-signal-safe functions for its whole life.
///
/// It leads the process group and waits for the launch (see `await_launch`). Then it starts the command in its
/// group with `vfork`: the command's process shares the keeper's memory until its exec, so nothing of `baton`'s
/// address space is copied or torn down on the way, and the exec's outcome comes back through memory; the keeper
/// passes it on through `report` and closes it. Then it waits for two things: the command ending (its raw wait
/// status goes to `status`, with whether the group is empty by then) and `lifeline` reading end of file, which
/// happens when `baton` ends in any way, also by SIGKILL (only `baton` holds the write end). Then it kills the
/// whole group with SIGKILL. After the command ended it stays until no other process of the group is left: as a
/// child subreaper it is the parent of what the command left behind, and reaps it.
///
/// Every signal stays blocked here, except SIGCHLD while waiting: signals sent to the group are for the command.
static void run_keeper(
    int report, int status, int lifeline, int go, int max_fd, char *const *paths, char *const *argv, char **envp) {
    setpgid(0, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    reset_signal_dispositions();
    const int keep[] = {report, status, lifeline, go};
    close_cloexec_descriptors(keep, 4, max_fd);
#ifdef __linux__
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_SET_NAME, "baton keeper");
#endif
    await_launch(go, lifeline, envp);

    struct sigaction child_action;
    memset(&child_action, 0, sizeof child_action);
    child_action.sa_handler = on_child;
    child_action.sa_flags = SA_NOCLDSTOP;
    sigemptyset(&child_action.sa_mask);
    sigaction(SIGCHLD, &child_action, NULL);

    volatile int exec_failure = 0;
    pid_t command = vfork();
    if (command == 0) {
        // Dispositions are the child's own under vfork (no shared handler table); signals are still blocked, so
        // no handler can run on the shared stack before the exec. The child writes only to its own variables
        // (and to `exec_failure`): the rest of the memory is the keeper's.
        struct sigaction default_action;
        memset(&default_action, 0, sizeof default_action);
        default_action.sa_handler = SIG_DFL;
        sigemptyset(&default_action.sa_mask);
        sigaction(SIGCHLD, &default_action, NULL);
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        exec_command(&exec_failure, paths, argv, envp);
    }
    int failure = command < 0 ? errno : exec_failure;
    if (failure != 0) write_fully(report, &failure, sizeof failure);
    close(report);
    if (command < 0) _exit(127);

    pid_t group = getpid();
    int reported = 0;
    sigset_t waiting;
    sigfillset(&waiting);
    sigdelset(&waiting, SIGCHLD);
    for (;;) {
        int wait_status = 0;
        pid_t ended;
        int command_status = 0, command_ended = 0;
        while ((ended = waitpid(-1, &wait_status, WNOHANG)) > 0) {
            if (ended == command && !reported) {
                command_status = wait_status;
                command_ended = 1;
            }
        }
        // Nothing the command started in the group can be left once no child is (a process whose parent ends is
        // re-parented here).
        int group_empty = waitpid(-group, &wait_status, WNOHANG) < 0 && errno == ECHILD;
        if (command_ended) {
            // The command's end, and whether it left anything behind: `baton` goes on at once when it did not.
            int message[2] = {command_status, group_empty};
            write_fully(status, message, sizeof message);
            close(status);
            reported = 1;
        }
        if (reported && group_empty) _exit(0);
        struct pollfd watched = {.fd = lifeline, .events = POLLIN, .revents = 0};
        // SIGCHLD is blocked between the waitpid above and here, and unblocked atomically while waiting: a child
        // that ends in between interrupts the wait.
        int ready = ppoll(&watched, 1, NULL, &waiting);
        if (ready > 0) {
            // End of file (or an error): `baton` is gone. Nothing of the group may outlive it.
            if (!reported) kill(command, SIGKILL);  // also if the command left the group
            kill(-group, SIGKILL);
            _exit(128 + SIGKILL);
        }
    }
}

/// Closes both ends of each of the first `count` pipes.
static void close_pipes(int pipes[][2], int count) {
    for (int index = 0; index < count; index++) {
        close(pipes[index][0]);
        close(pipes[index][1]);
    }
}

pid_t baton_prepare(
    char *const *paths, char *const *argv, char **envp, int *status_out, int *lifeline_out, int *go_out,
    int *report_out, int *error_out) {
    int pipes[4][2];
    for (int index = 0; index < 4; index++) {
        if (pipe2(pipes[index], O_CLOEXEC) != 0) {
            *error_out = errno;
            close_pipes(pipes, index);
            return -1;
        }
    }
    int *report = pipes[0], *status = pipes[1], *lifeline = pipes[2], *go = pipes[3];
    struct rlimit limit;
    int max_fd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t)max_fd) {
        max_fd = (int)limit.rlim_cur;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        close(status[0]);
        close(lifeline[1]);
        close(go[1]);
        run_keeper(report[1], status[1], lifeline[0], go[0], max_fd, paths, argv, envp);
    }
    int fork_error = errno;
    if (pid < 0) {
        *error_out = fork_error;
        close_pipes(pipes, 4);
        return -1;
    }
    close(report[1]);
    close(status[1]);
    close(lifeline[0]);
    close(go[0]);
    // Also here, so that the group exists before this returns whichever process runs first.
    setpgid(pid, pid);
    *status_out = status[0];
    *lifeline_out = lifeline[1];
    *go_out = go[1];
    *report_out = report[0];
    return pid;
}

int baton_launch(int go, const char *entry) {
    size_t length = strlen(entry);
    if (length > BATON_LAUNCH_ENTRY_MAX) {
        close(go);
        return E2BIG;
    }
    char message[sizeof(uint32_t) + BATON_LAUNCH_ENTRY_MAX];
    uint32_t prefix = (uint32_t)length;
    memcpy(message, &prefix, sizeof prefix);
    memcpy(message + sizeof prefix, entry, length);
    // A write to a pipe whose reader is gone raises SIGPIPE: block it on this thread for the write, and take a
    // SIGPIPE this write raised before unblocking.
    sigset_t pipe_signal, previous;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous);
    int failure = 0;
    size_t size = sizeof prefix + length;
    for (size_t sent = 0; sent < size;) {
        ssize_t written = write(go, message + sent, size - sent);
        if (written < 0) {
            if (errno == EINTR) continue;
            failure = errno;
            break;
        }
        sent += (size_t)written;
    }
    if (failure == EPIPE && !sigismember(&previous, SIGPIPE)) {
        struct timespec now = {0, 0};
        sigtimedwait(&pipe_signal, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(go);
    return failure;
}

int baton_launch_result(int report_fd) {
    int failure = 0;
    return read_fully(report_fd, &failure, sizeof failure) == sizeof failure ? failure : 0;
}

int baton_command_status(int status_fd, int *group_empty_out) {
    int message[2] = {0, 0};
    *group_empty_out = 0;
    if (read_fully(status_fd, message, sizeof message) != sizeof message) return -1;
    *group_empty_out = message[1];
    return message[0];
}

int baton_become_subreaper(void) {
#ifdef __linux__
    return prctl(PR_SET_CHILD_SUBREAPER, 1);
#else
    return 0;
#endif
}

int baton_wait(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return status;
}

int baton_exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

int baton_term_signal(int status) {
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}
