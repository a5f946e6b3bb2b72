#define _GNU_SOURCE
#include "CBatonProcess.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#endif

#ifdef CLOCK_BOOTTIME
#define BATON_CLOCK CLOCK_BOOTTIME
#else
#define BATON_CLOCK CLOCK_MONOTONIC
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

/// The environment entries the launch passed, each ended by a NUL (static: the keeper allocates nothing).
static char launch_entries[BATON_LAUNCH_ENTRIES_BYTES + 1];

/// The head of the launch message (then `length` bytes of environment entries).
struct launch_head {
    int64_t kill_ns;
    int64_t grace_ns;
    uint64_t term;
    uint32_t length;
    uint32_t reserved;
};

/// A kill time for the watchdog (see `baton_extend`).
struct kill_time {
    uint64_t term;
    int64_t kill_ns;
};

/// The watchdog's schedule: SIGTERM to the group at `kill_ns − grace_ns`, SIGKILL at `kill_ns`, on `BATON_CLOCK`.
struct watchdog {
    uint64_t term;
    int64_t kill_ns;
    int64_t grace_ns;
    int term_sent;
};

int64_t baton_boottime_ns(void) {
    struct timespec now;
    if (clock_gettime(BATON_CLOCK, &now) != 0) return 0;
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/// When SIGTERM is due: `kill_ns − grace_ns` (never, without a kill time).
static int64_t term_due(const struct watchdog *dog) {
    if (dog->kill_ns == BATON_NO_KILL_TIME) return BATON_NO_KILL_TIME;
    return dog->kill_ns - dog->grace_ns;
}

/// Reads every kill time waiting on `watchdog_fd` (non-blocking) and keeps the latest of the watchdog's term, unless
/// SIGTERM was already sent: a term being ended is not extended. Returns 0, or -1 once the pipe reads end of file
/// (`baton` closed it, or ended).
static int read_kill_times(int watchdog_fd, struct watchdog *dog) {
    struct kill_time times[32];
    for (;;) {
        ssize_t count = read(watchdog_fd, times, sizeof times);
        if (count < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        if (count == 0) return -1;
        // Every message is written whole (it is shorter than PIPE_BUF), so the pipe holds whole messages only.
        for (size_t index = 0; index < (size_t)count / sizeof times[0]; index++) {
            if (times[index].term != dog->term || dog->term_sent) continue;
            if (times[index].kill_ns > dog->kill_ns) dog->kill_ns = times[index].kill_ns;
        }
    }
}

/// The keeper before the launch: waits (every signal blocked) for the launch message on `go` (see `launch_head`)
/// and adds its entries to `envp`, whose spare slots start at its first NULL. Ends the keeper, having run nothing, on end of
/// file at `go` before a whole message (the command was abandoned) or at `lifeline` (`baton` is gone), and, having
/// written `BATON_LAUNCH_REFUSED` to `report`, when the SIGTERM time has already passed — of the launch's kill time
/// or of a later one of its term already waiting on `watchdog_fd` (sent after the launch, read before deciding).
static void await_launch(int go, int lifeline, int report, int watchdog_fd, char **envp, struct watchdog *dog) {
    struct pollfd watched[2] = {
        {.fd = go, .events = POLLIN, .revents = 0},
        {.fd = lifeline, .events = POLLIN, .revents = 0},
    };
    while (poll(watched, 2, -1) < 0) {
        if (errno != EINTR) _exit(0);
    }
    if (watched[1].revents != 0 && watched[0].revents == 0) _exit(0);
    struct launch_head head;
    if (read_fully(go, &head, sizeof head) != sizeof head || head.length > BATON_LAUNCH_ENTRIES_BYTES) _exit(0);
    if (read_fully(go, launch_entries, head.length) != head.length) _exit(0);
    launch_entries[head.length] = '\0';
    close(go);
    dog->term = head.term;
    dog->kill_ns = head.kill_ns;
    dog->grace_ns = head.grace_ns < 0 ? 0 : head.grace_ns;
    fcntl(watchdog_fd, F_SETFL, fcntl(watchdog_fd, F_GETFL) | O_NONBLOCK);
    read_kill_times(watchdog_fd, dog);
    // The term may already be over: its SIGTERM time has passed (the launch waited in the pipe, or `baton` was
    // stopped or starved between reading the deadline and writing). Nothing may start then.
    if (dog->kill_ns != BATON_NO_KILL_TIME && baton_boottime_ns() >= term_due(dog)) {
        int refused = BATON_LAUNCH_REFUSED;
        write_fully(report, &refused, sizeof refused);
        _exit(0);
    }
    size_t slot = 0;
    while (envp[slot] != NULL) slot++;
    size_t added = 0;
    for (size_t at = 0; at < head.length && added < BATON_LAUNCH_ENTRIES_MAX; added++) {
        envp[slot + added] = launch_entries + at;
        at += strlen(launch_entries + at) + 1;
    }
}

/// Sends `signal` to the group, and to the command itself while it runs (it may have left the group).
static void signal_all(pid_t group, pid_t command, int command_running, int signal_number) {
    if (command_running && getpgid(command) != group) kill(command, signal_number);
    kill(-group, signal_number);
}

/// The keeper: the process `baton` forks. It never calls exec, so, forked from a process with threads, it calls
/// only async-signal-safe functions for its whole life.
///
/// It leads the process group and waits for the launch (see `await_launch`). Then it starts the command in its
/// group with `vfork`: the command's process shares the keeper's memory until its exec, so nothing of `baton`'s
/// address space is copied or torn down on the way, and the exec's outcome comes back through memory; the keeper
/// passes it on through `report` and closes it. Then it waits for three things: the command ending (its raw wait
/// status goes to `status`, with whether the group is empty by then), `lifeline` reading end of file, which
/// happens when `baton` ends in any way, also by SIGKILL (only `baton` holds the write end), and the watchdog's
/// times. At end of file it kills the whole group with SIGKILL. The watchdog is timed by the keeper alone, on
/// `BATON_CLOCK` (a timerfd with an absolute expiry, and the wait's own timeout besides): at the kill time less the
/// grace, SIGTERM (and SIGCONT, so that a stopped group takes it) to the group, at the kill time SIGKILL, unless a
/// later kill time of the same term arrived on `watchdog_fd` first — whether `baton` runs, is stopped or hangs.
/// After the command ended it stays until no other process of the group is left: as a child subreaper it is the
/// parent of what the command left behind, and reaps it; the watchdog goes on timing them.
///
/// Every signal stays blocked here, except SIGCHLD while waiting: signals sent to the group are for the command.
static void run_keeper(
    int report, int status, int lifeline, int go, int watchdog_fd, int max_fd, char *const *paths, char *const *argv,
    char **envp) {
    setpgid(0, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    reset_signal_dispositions();
    const int keep[] = {report, status, lifeline, go, watchdog_fd};
    close_cloexec_descriptors(keep, 5, max_fd);
#ifdef __linux__
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_SET_NAME, "baton keeper");
#endif
    struct watchdog dog = {.term = 0, .kill_ns = BATON_NO_KILL_TIME, .grace_ns = 0, .term_sent = 0};
    await_launch(go, lifeline, report, watchdog_fd, envp, &dog);
    int timer = -1;
#ifdef __linux__
    timer = timerfd_create(BATON_CLOCK, TFD_CLOEXEC | TFD_NONBLOCK);
#endif

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
    int armed_for = -1;  // which time the timer is armed for: 0 SIGTERM, 1 SIGKILL, -1 none (no kill time)
    int64_t armed_at = 0;
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
            // The command's end, whether it left anything behind (`baton` goes on at once when it did not), and
            // the last signal the watchdog sent.
            int message[3] = {command_status, group_empty, dog.term_sent ? SIGTERM : 0};
            write_fully(status, message, sizeof message);
            close(status);
            reported = 1;
        }
        if (reported && group_empty) _exit(0);

        if (watchdog_fd >= 0 && read_kill_times(watchdog_fd, &dog) < 0) {
            close(watchdog_fd);
            watchdog_fd = -1;
        }
        int64_t now = baton_boottime_ns();
        if (!dog.term_sent && now >= term_due(&dog)) {
            dog.term_sent = 1;
            signal_all(group, command, !reported, SIGTERM);
            // A stopped process takes SIGTERM only once continued.
            signal_all(group, command, !reported, SIGCONT);
        }
        if (dog.kill_ns != BATON_NO_KILL_TIME && now >= dog.kill_ns) {
            // SIGKILL to the group reaches the keeper as well (it cannot be blocked), so the keeper reports first
            // what it does: the command's end by SIGKILL, sent now, not waited for. Once the keeper is gone,
            // `baton` (a subreaper) is the parent of what is left, and waits until nothing of the group is.
            if (!reported) {
                int message[3] = {SIGKILL, 0, SIGKILL};  // the raw wait status of a process ended by SIGKILL
                write_fully(status, message, sizeof message);
                kill(command, SIGKILL);  // also if the command left the group
            }
            kill(-group, SIGKILL);
            _exit(128 + SIGKILL);
        }
        int next_for = !dog.term_sent ? 0 : 1;
        int64_t next = next_for == 0 ? term_due(&dog) : next_for == 1 ? dog.kill_ns : BATON_NO_KILL_TIME;
        if (next == BATON_NO_KILL_TIME) next_for = -1;
#ifdef __linux__
        if (timer >= 0 && (next_for != armed_for || (next_for >= 0 && next != armed_at))) {
            struct itimerspec expiry;
            memset(&expiry, 0, sizeof expiry);
            if (next_for >= 0) {
                expiry.it_value.tv_sec = (time_t)(next / 1000000000);
                expiry.it_value.tv_nsec = (long)(next % 1000000000);
            }
            timerfd_settime(timer, TFD_TIMER_ABSTIME, &expiry, NULL);
            armed_for = next_for;
            armed_at = next;
        }
#endif
        // The wait's own timeout as well: relative, so on a clock that may stop while the machine sleeps, but
        // the timer above is not.
        struct timespec timeout;
        struct timespec *timeout_pointer = NULL;
        if (next_for >= 0) {
            int64_t left = next - now;
            if (left < 0) left = 0;
            timeout.tv_sec = (time_t)(left / 1000000000);
            timeout.tv_nsec = (long)(left % 1000000000);
            timeout_pointer = &timeout;
        }
        struct pollfd watched[3] = {
            {.fd = lifeline, .events = POLLIN, .revents = 0},
            {.fd = watchdog_fd, .events = POLLIN, .revents = 0},
            {.fd = timer, .events = POLLIN, .revents = 0},
        };
        // SIGCHLD is blocked between the waitpid above and here, and unblocked atomically while waiting: a child
        // that ends in between interrupts the wait. (A negative descriptor is not watched.)
        int ready = ppoll(watched, 3, timeout_pointer, &waiting);
        if (ready > 0 && watched[0].revents != 0) {
            // End of file (or an error): `baton` is gone. Nothing of the group may outlive it.
            if (!reported) kill(command, SIGKILL);  // also if the command left the group
            kill(-group, SIGKILL);
            _exit(128 + SIGKILL);
        }
        if (ready > 0 && watched[2].revents != 0) {
            uint64_t expirations;
            while (read(timer, &expirations, sizeof expirations) < 0 && errno == EINTR) {}
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
    int *report_out, int *watchdog_out, int *error_out) {
    int pipes[5][2];
    for (int index = 0; index < 5; index++) {
        if (pipe2(pipes[index], O_CLOEXEC) != 0) {
            *error_out = errno;
            close_pipes(pipes, index);
            return -1;
        }
    }
    int *report = pipes[0], *status = pipes[1], *lifeline = pipes[2], *go = pipes[3], *watchdog = pipes[4];
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
        close(watchdog[1]);
        run_keeper(report[1], status[1], lifeline[0], go[0], watchdog[0], max_fd, paths, argv, envp);
    }
    int fork_error = errno;
    if (pid < 0) {
        *error_out = fork_error;
        close_pipes(pipes, 5);
        return -1;
    }
    close(report[1]);
    close(status[1]);
    close(lifeline[0]);
    close(go[0]);
    close(watchdog[0]);
    // A kill time that does not fit (the keeper is stopped with a full pipe) is dropped, never waited for: the
    // keeper then acts on an earlier one.
    fcntl(watchdog[1], F_SETFL, fcntl(watchdog[1], F_GETFL) | O_NONBLOCK);
    // Also here, so that the group exists before this returns whichever process runs first.
    setpgid(pid, pid);
    *status_out = status[0];
    *lifeline_out = lifeline[1];
    *go_out = go[1];
    *report_out = report[0];
    *watchdog_out = watchdog[1];
    return pid;
}

/// Writes `size` bytes to the pipe `fd` with SIGPIPE blocked on this thread (a SIGPIPE the write raised is taken
/// before unblocking); returns 0 or the errno of the failed write (EPIPE: the reader is gone).
static int write_to_pipe(int fd, const void *buffer, size_t size) {
    sigset_t pipe_signal, previous;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous);
    int failure = 0;
    const char *bytes = buffer;
    for (size_t sent = 0; sent < size;) {
        ssize_t written = write(fd, bytes + sent, size - sent);
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
    return failure;
}

int baton_launch(int go, const char *entries, size_t length, int64_t kill_ns, int64_t grace_ns, uint64_t term) {
    size_t count = 0;
    for (size_t at = 0; at < length; at++) count += entries[at] == '\0';
    if (length > BATON_LAUNCH_ENTRIES_BYTES || count > BATON_LAUNCH_ENTRIES_MAX) {
        close(go);
        return E2BIG;
    }
    if (length > 0 && entries[length - 1] != '\0') {
        close(go);
        return EINVAL;
    }
    char message[sizeof(struct launch_head) + BATON_LAUNCH_ENTRIES_BYTES];
    struct launch_head head = {
        .kill_ns = kill_ns, .grace_ns = grace_ns, .term = term, .length = (uint32_t)length, .reserved = 0};
    memcpy(message, &head, sizeof head);
    memcpy(message + sizeof head, entries, length);
    int failure = write_to_pipe(go, message, sizeof head + length);
    close(go);
    return failure;
}

int baton_extend(int watchdog_fd, uint64_t term, int64_t kill_ns) {
    struct kill_time message = {.term = term, .kill_ns = kill_ns};
    return write_to_pipe(watchdog_fd, &message, sizeof message);
}

int baton_launch_result(int report_fd) {
    int failure = 0;
    return read_fully(report_fd, &failure, sizeof failure) == sizeof failure ? failure : 0;
}

int baton_command_status(int status_fd, int *group_empty_out, int *watchdog_signal_out) {
    int message[3] = {0, 0, 0};
    *group_empty_out = 0;
    *watchdog_signal_out = 0;
    if (read_fully(status_fd, message, sizeof message) != sizeof message) return -1;
    *group_empty_out = message[1];
    *watchdog_signal_out = message[2];
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

int baton_lower_priority(int nice_value) {
#ifdef __linux__
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL) {
        return setpriority(PRIO_PROCESS, 0, nice_value) == 0 ? 1 : -1;
    }
    int set = 0;
    int failure = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') {
            continue;
        }
        id_t thread = (id_t)strtol(entry->d_name, NULL, 10);
        if (setpriority(PRIO_PROCESS, thread, nice_value) == 0) {
            set += 1;
        } else {
            failure = errno;
        }
    }
    closedir(tasks);
    if (set == 0 && failure != 0) {
        errno = failure;
        return -1;
    }
    return set;
#else
    return setpriority(PRIO_PROCESS, 0, nice_value) == 0 ? 1 : -1;
#endif
}
