/*
 * sbx-launch: what the daemon runs to start one sandbox's bwrap, in one exec instead of four
 * (sh to join the cgroups, prlimit, setpriv, taskset). It runs on the host, started by the daemon
 * with an empty environment, and trusts nothing but its argv (the daemon's):
 *
 *   sbx-launch [--cgroup-procs FILE]... | [--cgroup-dir DIR] [--oom-score-adj N] --nofile N
 *              [--nproc N] [--cpus LIST] [--userns BASE:COUNT:FD]
 *              [--root-view ro|rw:/SOURCE:/TARGET [--root-overlay /UPPER:/WORK:/MERGED] --root-fd N]
 *              [--uid UID] -- PROGRAM [ARG]...
 *
 * In this order: joins each cgroup (writes 0 to its cgroup.procs: this process, so everything
 * it execs), sets its oom_score_adj, sets RLIMIT_NOFILE and RLIMIT_NPROC (soft = hard) and
 * RLIMIT_CORE 0, pins itself to the CPU list (kernel format, "0-2,5"), makes a user namespace
 * mapping 0..COUNT-1 to host BASE.. owned by UID and leaves it open on FD for bwrap's --userns
 * (a sandbox booted from an image: its root is uid 0 there; userns.h), mounts the root's view
 * idmapped by that namespace (with --root-view: rootview.h; paths without ':' or ',') and leaves
 * the root (MERGED with an overlay, else TARGET) open on fd N for bwrap's --bind-fd (the daemon
 * saves an exec of its own per boot this way), drops to UID:UID with no
 * supplementary groups (and checks it cannot get root back), then execs PROGRAM (an absolute
 * path). Any step failing ends it with status 125 and a line on stderr, before PROGRAM runs.
 *
 * --cgroup-dir DIR (cgroup v2, instead of --cgroup-procs): moving a process into a cgroup takes
 * the kernel's threadgroup lock for writing, which waits for an RCU grace period after a pause
 * (~8 ms) unless the host has favordynmods. A process born in the cgroup takes no such lock, so
 * sbx-launch starts the rest of the launch as a child made there with clone3(CLONE_INTO_CGROUP)
 * (kernel 5.7) and stays as its waiter (waiter.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rootview.h"
#include "userns.h"

#define MAX_CGROUPS 16

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sbx-launch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(125);
}

static unsigned long number(const char *flag, const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || n > max) fail("%s: not a number up to %lu: '%s'", flag, max, s);
    return n;
}

static void write_file(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open %s: %s", path, strerror(errno));
    size_t n = strlen(value);
    if (write(fd, value, n) != (ssize_t)n) fail("cannot write %s: %s", path, strerror(errno));
    if (close(fd) < 0) fail("cannot write %s: %s", path, strerror(errno));
}

static void set_limit(int resource, const char *name, rlim_t n)
{
    struct rlimit r = { n, n };
    if (setrlimit(resource, &r) < 0) fail("cannot set %s to %lu: %s", name, (unsigned long)n, strerror(errno));
}

#include "waiter.h" /* uses fail() and write_file() */

/* Moves `fd` (opened close-on-exec) to the number `want` and keeps it open for the program. */
static void place_fd(int fd, int want, const char *what)
{
    if (fd == want) {
        if (fcntl(fd, F_SETFD, 0) < 0) fail("cannot keep %s open on fd %d for the program: %s", what, want, strerror(errno));
        return;
    }
    if (dup2(fd, want) < 0) fail("cannot move %s to fd %d: %s", what, want, strerror(errno));
    close(fd);
}

/* "A:B:C" into `n` absolute paths without ',' (overlay options); `copy` holds them. */
static void split_paths(const char *flag, const char *value, char *copy, size_t copy_len, const char **out, int n)
{
    if (strlen(value) >= copy_len) fail("%s: too long", flag);
    strcpy(copy, value);
    char *p = copy;
    for (int k = 0; k < n; k++) {
        char *end = strchr(p, ':');
        if ((k < n - 1) != (end != NULL)) fail("%s: expected %d paths joined by ':', not '%s'", flag, n, value);
        if (end) *end = '\0';
        if (p[0] != '/' || strchr(p, ',')) fail("%s: '%s' is not an absolute path without ','", flag, p);
        out[k] = p;
        p = end ? end + 1 : NULL;
    }
}

/* "0-2,5" into a CPU set; the whole list must parse. */
static void parse_cpus(const char *list, cpu_set_t *set)
{
    CPU_ZERO(set);
    const char *p = list;
    for (;;) {
        char *end;
        errno = 0;
        unsigned long from = strtoul(p, &end, 10), to = from;
        if (errno || end == p || *p == '-' || from >= CPU_SETSIZE) fail("--cpus: bad CPU list '%s'", list);
        p = end;
        if (*p == '-') {
            const char *q = p + 1;
            to = strtoul(q, &end, 10);
            if (errno || end == q || *q == '-' || to >= CPU_SETSIZE || to < from) fail("--cpus: bad CPU list '%s'", list);
            p = end;
        }
        for (unsigned long c = from; c <= to; c++) CPU_SET(c, set);
        if (*p == '\0') return;
        if (*p != ',') fail("--cpus: bad CPU list '%s'", list);
        p++;
    }
}

int main(int argc, char **argv)
{
    const char *cgroups[MAX_CGROUPS];
    int ncgroups = 0;
    const char *oom = NULL, *cpus = NULL, *userns = NULL, *cgroup_dir = NULL;
    long nofile = -1, nproc = -1, uid = -1, root_fd = -1;
    struct root_view view = {0};
    static char view_paths[2 * PATH_MAX], overlay_paths[3 * PATH_MAX];
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc) fail("%s: a value must follow", a);
        const char *v = argv[++i];
        if (strcmp(a, "--cgroup-procs") == 0) {
            if (ncgroups == MAX_CGROUPS) fail("more than %d --cgroup-procs", MAX_CGROUPS);
            cgroups[ncgroups++] = v;
        } else if (strcmp(a, "--cgroup-dir") == 0) {
            if (cgroup_dir) fail("--cgroup-dir: only one");
            cgroup_dir = v;
        } else if (strcmp(a, "--oom-score-adj") == 0) {
            (void)number(a, v, 1000);
            oom = v;
        } else if (strcmp(a, "--nofile") == 0) {
            nofile = (long)number(a, v, 1u << 30);
        } else if (strcmp(a, "--nproc") == 0) {
            nproc = (long)number(a, v, 1u << 30);
        } else if (strcmp(a, "--cpus") == 0) {
            cpus = v;
        } else if (strcmp(a, "--userns") == 0) {
            userns = v;
        } else if (strcmp(a, "--root-view") == 0) {
            const char *paths[2];
            if (strncmp(v, "ro:", 3) != 0 && strncmp(v, "rw:", 3) != 0) fail("--root-view: expected ro|rw:/SOURCE:/TARGET, not '%s'", v);
            split_paths(a, v + 3, view_paths, sizeof view_paths, paths, 2);
            view.ro = v[1] == 'o';
            view.source = paths[0];
            view.target = paths[1];
        } else if (strcmp(a, "--root-overlay") == 0) {
            const char *paths[3];
            split_paths(a, v, overlay_paths, sizeof overlay_paths, paths, 3);
            view.upper = paths[0];
            view.work = paths[1];
            view.merged = paths[2];
        } else if (strcmp(a, "--root-fd") == 0) {
            root_fd = (long)number(a, v, 1024);
            if (root_fd < 3) fail("--root-fd: not among stdio (3..1024), not '%s'", v);
        } else if (strcmp(a, "--uid") == 0) {
            uid = (long)number(a, v, 0x7fffffff);
            if (uid == 0) fail("--uid: never 0");
        } else {
            fail("unknown option '%s'", a);
        }
    }
    if (i >= argc || argv[i][0] != '/') fail("usage: sbx-launch [options] -- /PROGRAM [ARG]...");
    if (nofile < 0) fail("--nofile is required");
    if (cgroup_dir && ncgroups) fail("--cgroup-dir and --cgroup-procs: one or the other");
    if ((view.source != NULL) != (root_fd >= 0) || (view.merged && !view.source)) fail("--root-view and --root-fd go together, and --root-overlay needs them");
    if (view.source && !userns) fail("--root-view needs --userns: the view is idmapped by the sandbox's namespace");

    for (int k = 0; k < ncgroups; k++) write_file(cgroups[k], "0");
    /* From here on in the child: the waiter never returns. */
    pid_t waiter = cgroup_dir ? start_in_cgroup(cgroup_dir) : 0;
    if (oom) write_file("/proc/self/oom_score_adj", oom);
    set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", (rlim_t)nofile);
    set_limit(RLIMIT_CORE, "RLIMIT_CORE", 0);
    if (nproc >= 0) set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", (rlim_t)nproc);
    if (cpus) {
        cpu_set_t set;
        parse_cpus(cpus, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) fail("cannot run on CPUs %s: %s", cpus, strerror(errno));
    }
    if (userns) {
        unsigned long base, count, fd;
        int end = 0;
        if (sscanf(userns, "%lu:%lu:%lu%n", &base, &count, &fd, &end) != 3 || userns[end] || userns[0] == '-' || base == 0 || count == 0 || base + count > 0xfffffffful || fd < 3 || fd > 1024)
            fail("--userns: expected BASE:COUNT:FD (BASE above 0, the block within 32 bits, FD 3..1024), not '%s'", userns);
        if (uid < (long)base || uid >= (long)(base + count)) fail("--userns: the uid %ld must be inside the block it owns", uid);
        char why[256];
        if (root_fd == (long)fd) fail("--root-fd and the --userns fd must differ");
        int ns = make_userns(base, count, (unsigned long)uid, why, sizeof why);
        if (ns < 0) fail("cannot make the user namespace: %s", why);
        if (view.source && mount_root_view(ns, &view, why, sizeof why) < 0) fail("cannot mount the root's view: %s", why);
        /* Opened close-on-exec: on the very number asked for (the lowest free one), dup2 would keep that. */
        place_fd(ns, (int)fd, "the user namespace");
        if (view.source) {
            const char *root = view.merged ? view.merged : view.target;
            int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dir < 0) fail("cannot open the root %s: %s", root, strerror(errno));
            place_fd(dir, (int)root_fd, "the root");
        }
    }
    if (uid > 0) {
        gid_t gid = (gid_t)uid;
        if (setgroups(0, NULL) < 0) fail("cannot clear supplementary groups: %s", strerror(errno));
        if (setresgid(gid, gid, gid) < 0) fail("cannot set gid %ld: %s", uid, strerror(errno));
        if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) fail("cannot set uid %ld: %s", uid, strerror(errno));
        /* Fail closed: root must be gone for good. */
        if (setresuid(0, 0, 0) == 0 || getuid() != (uid_t)uid || geteuid() != (uid_t)uid || getgid() != gid || getegid() != gid)
            fail("dropping to uid %ld did not hold", uid);
        if (getgroups(0, NULL) != 0) fail("supplementary groups survived");
    }
    /* After the uid drop, which clears it: the sandbox dies with its waiter (a SIGKILL from the daemon). */
    if (waiter) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail("cannot set the parent-death signal: %s", strerror(errno));
        if (getppid() != waiter) fail("the waiter ended before the launch");
    }
    execv(argv[i], &argv[i]);
    fail("cannot run %s: %s", argv[i], strerror(errno));
}
