/*
 * sbx-launch --cgroup-dir: the child born in the sandbox's cgroup, and the waiter that stays.
 * Included by launch.c only (it uses its fail() and write_file()).
 *
 * The waiter is what the daemon started, so it is what the daemon waits for and signals. It
 * keeps no fds (the sandbox's channel must close when bwrap ends, not when the waiter does),
 * passes on the signals the daemon may send (SIGKILL cannot be: the child's parent-death signal,
 * set by launch.c after the uid drop, does that), and ends as the child did: its exit status,
 * or the same signal (with no core dump).
 */
#ifndef SBX_WAITER_H
#define SBX_WAITER_H

#include <linux/sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
static volatile pid_t waited_child;

static void forward(int sig)
{
    if (waited_child > 0) kill(waited_child, sig);
}

static _Noreturn void wait_and_end_like(pid_t child, const sigset_t *mask)
{
    waited_child = child;
    /* No fds: stdio included (the daemon's pipes to bwrap). */
    if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0)
        for (int fd = 0; fd < 1024; fd++) close(fd);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++) sigaction(forwarded[k], &sa, NULL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) _exit(125);
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t just;
    sigemptyset(&just);
    sigaddset(&just, sig);
    sigprocmask(SIG_UNBLOCK, &just, NULL);
    raise(sig);
    _exit(128 + sig);
}

/*
 * Returns in the child, born in the cgroup at DIR, with this process's pid (its waiter's); or,
 * where the kernel cannot start a process in a cgroup, in this process, joined to it, with 0.
 */
static pid_t start_in_cgroup(const char *dir)
{
    int cgroup = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cgroup < 0) fail("cannot open the cgroup %s: %s", dir, strerror(errno));
    pid_t self = getpid();
    /* Held until the waiter's handlers are in place, so no signal the daemon sends is lost. */
    sigset_t block, before;
    sigemptyset(&block);
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++) sigaddset(&block, forwarded[k]);
    sigprocmask(SIG_BLOCK, &block, &before);
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL)) {
        /* A kernel before 5.7 (no clone3 or no CLONE_INTO_CGROUP): join the usual way, no waiter. */
        close(cgroup);
        sigprocmask(SIG_SETMASK, &before, NULL);
        char procs[PATH_MAX];
        if (snprintf(procs, sizeof procs, "%s/cgroup.procs", dir) >= (int)sizeof procs) fail("--cgroup-dir: path too long");
        write_file(procs, "0");
        return 0;
    }
    if (pid < 0) fail("cannot start in the cgroup %s: %s", dir, strerror(errno));
    if (pid > 0) wait_and_end_like((pid_t)pid, &before);
    close(cgroup);
    sigprocmask(SIG_SETMASK, &before, NULL);
    return self;
}

#endif
