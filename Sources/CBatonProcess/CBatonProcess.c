#define _GNU_SOURCE
#include "CBatonProcess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
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

/// The child between fork and exec: async-signal-safe calls only.
static void run_child(
    pid_t parent, int report, char *const *paths, char *const *argv, char *const *envp) {
    setpgid(0, 0);
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        // The parent died before the death signal was armed: nobody would stop this command.
        _exit(127);
    }
#else
    (void)parent;
#endif
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    for (int signal_number = 1; signal_number < NSIG; signal_number++) {
        sigaction(signal_number, &action, NULL);  // fails harmlessly for SIGKILL, SIGSTOP and reserved signals
    }
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);

    int failure = ENOENT;
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
            failure = errno;
            break;
        }
        break;
    }
    if (failure == ENOENT && denied) failure = EACCES;
    write_fully(report, &failure, sizeof failure);
    _exit(127);
}

pid_t baton_spawn(char *const *paths, char *const *argv, char *const *envp, int *error_out) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *error_out = errno;
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *error_out = errno;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        close(report[0]);
        run_child(parent, report[1], paths, argv, envp);
    }
    close(report[1]);
    // Also here, so that the group exists before this returns whichever process runs first. Once the child has
    // called exec this fails with EACCES, which is fine: the child did it itself.
    setpgid(pid, pid);

    int failure = 0;
    size_t received = 0;
    while (received < sizeof failure) {
        ssize_t count = read(report[0], (char *)&failure + received, sizeof failure - received);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        received += (size_t)count;
    }
    close(report[0]);
    if (received == sizeof failure) {
        baton_wait(pid);
        *error_out = failure;
        return -1;
    }
    return pid;
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
