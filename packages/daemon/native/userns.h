#ifndef SBX_USERNS_H
#define SBX_USERNS_H
/*
 * A user namespace mapping uids and gids 0..count-1 inside to base..base+count-1 on the host,
 * owned by host uid `owner`, made by a root process (only root may write a map of more than its
 * own uid). Header-only: sbx-launch is a one-file program.
 *
 * A child takes `owner` as its uid (the namespace's owner is the euid that creates it), unshares,
 * and waits; the parent writes its maps and opens /proc/<child>/ns/user; the child then sets the
 * namespace's user.max_user_namespaces to 0, so nothing inside can nest another (seccomp refuses
 * unshare and clone's namespace flags as well), and exits. Returns the namespace's fd, or -1
 * with a message in `why`.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int userns_write(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int make_userns(unsigned long base, unsigned long count, unsigned long owner, char *why, size_t why_len)
{
    int ready[2], go[2];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
        snprintf(why, why_len, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_len, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        char c = 0;
        if (setgroups(0, NULL) < 0 || setresgid((gid_t)owner, (gid_t)owner, (gid_t)owner) < 0 || setresuid((uid_t)owner, (uid_t)owner, (uid_t)owner) < 0) _exit(10);
        if (unshare(CLONE_NEWUSER) < 0) _exit(11);
        if (write(ready[1], &c, 1) != 1) _exit(12);
        if (read(go[0], &c, 1) != 1) _exit(13);
        if (userns_write("/proc/sys/user/max_user_namespaces", "0") < 0) _exit(14);
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c, path[64], map[64];
    int fd = -1;
    if (read(ready[0], &c, 1) != 1) {
        snprintf(why, why_len, "the namespace's first process failed before unsharing");
        goto out;
    }
    snprintf(map, sizeof map, "0 %lu %lu\n", base, count);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (userns_write(path, map) < 0) {
        snprintf(why, why_len, "writing %s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    if (userns_write(path, map) < 0) {
        snprintf(why, why_len, "writing %s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) snprintf(why, why_len, "opening %s: %s", path, strerror(errno));
out:
    if (fd >= 0 && write(go[1], &c, 1) != 1) {
        close(fd);
        fd = -1;
        snprintf(why, why_len, "the namespace's first process went away");
    }
    close(go[1]);
    close(ready[0]);
    int status = 0;
    if (fd < 0) kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (fd >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        snprintf(why, why_len, "the namespace's first process failed (status %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        close(fd);
        fd = -1;
    }
    return fd;
}

#endif
