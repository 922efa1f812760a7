#include "setup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "path.h"
#include "util.h"

#define MAX_BPF_INSNS 4096
/* The kernel's own ceiling for devpts' max= (NR_UNIX98_PTY_MAX). */
#define MAX_PTYS (1u << 20)

mode_t setup_umask;
bool setup_sudo;
static int oom_fd = -1;
static char oom_own[16];

int oom_children_begin(void) { return pwrite(oom_fd, "1000", 4, 0) == 4 ? 0 : -1; }

void oom_children_end(void)
{
    /* Lowering back is allowed: it only returns to where a privileged parent put us. */
    if (pwrite(oom_fd, oom_own, strlen(oom_own), 0) < 0) die("cannot restore oom_score_adj to %s: %m", oom_own);
}

/*
 * /proc/self files of a non-dumpable process belong to root, so the handle is taken first.
 * A child cannot raise its own value between fork and exec for the same reason, hence the
 * raise-fork-restore around each spawn.
 */
static void keep_oom_handle(void)
{
    oom_fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
    if (oom_fd < 0) die("cannot open /proc/self/oom_score_adj: %m");
    ssize_t n = pread(oom_fd, oom_own, sizeof oom_own - 1, 0);
    if (n <= 0) die("cannot read oom_score_adj: %m");
    oom_own[n] = 0;
    oom_own[strcspn(oom_own, "\n")] = 0;
}

static unsigned parse_uint(const char *s, const char *what, unsigned max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end || v > max) die("%s must be a number up to %u, not '%s'", what, max, s);
    return (unsigned)v;
}

static void parse_args(int argc, char **argv, int *seccomp_fd, unsigned *ptys)
{
    *seccomp_fd = -1;
    *ptys = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seccomp-fd") == 0 && i + 1 < argc) *seccomp_fd = (int)parse_uint(argv[++i], "--seccomp-fd", 1 << 20);
        else if (strcmp(argv[i], "--ptys") == 0 && i + 1 < argc) *ptys = parse_uint(argv[++i], "--ptys", MAX_PTYS);
        else if (strcmp(argv[i], "--sudo") == 0) setup_sudo = true;
        else die("usage: sbx-supervisor --seccomp-fd FD --ptys N [--sudo] (unexpected '%s')", argv[i]);
    }
    if (*seccomp_fd < 3 || *ptys < 1) die("usage: sbx-supervisor --seccomp-fd FD --ptys N [--sudo]");
}

static size_t read_filter(int fd, struct sock_filter *insns)
{
    size_t cap = MAX_BPF_INSNS * sizeof *insns, got = 0;
    uint8_t *p = (uint8_t *)insns;
    for (;;) {
        if (got == cap) die("the seccomp program is longer than %d instructions", MAX_BPF_INSNS);
        ssize_t n = read(fd, p + got, cap - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("cannot read the seccomp program: %m");
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got == 0 || got % sizeof *insns) die("the seccomp program is not a whole number of instructions (%zu bytes)", got);
    return got / sizeof *insns;
}

/* Whatever the daemon's own parent left open reaches us through bwrap; nothing of it may reach user code. */
static void close_inherited(void)
{
    if (oom_fd > 3 && syscall(SYS_close_range, 3u, (unsigned)oom_fd - 1, 0u) < 0) die("close_range: %m");
    if (syscall(SYS_close_range, (unsigned)oom_fd + 1, ~0u, 0u) < 0) die("close_range: %m");
    if (oom_fd < 3) die("stdin, stdout or stderr was not open");
}

/*
 * bwrap's --disable-userns leaves us in a second user namespace that does not own the mount
 * namespace, so mounting needs one of our own. Mounts copied into it are locked: nothing
 * inside can peel off the read-only root or the binds even with privileges.
 */
static void mount_devpts(unsigned ptys)
{
    if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS): %m");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("making mounts private: %m");
    char opts[96];
    snprintf(opts, sizeof opts, "newinstance,ptmxmode=0666,mode=0620,max=%u", ptys);
    if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, opts) < 0) die("mounting devpts (%s): %m", opts);
    struct stat ptmx, pts;
    if (lstat("/dev/ptmx", &ptmx) < 0) die("/dev/ptmx: %m");
    if (!S_ISLNK(ptmx.st_mode) && mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL) < 0) die("binding /dev/ptmx: %m");
    if (stat("/dev/ptmx", &ptmx) < 0 || stat("/dev/pts", &pts) < 0 || ptmx.st_dev != pts.st_dev)
        die("/dev/ptmx does not lead to the sandbox's own devpts");
}

/*
 * The home's former name: the same directory bound over the mount point the daemon made, so
 * that it is a directory (`ls /home/user` lists the home) rather than a link to one. bwrap
 * binds only host paths, and rootless homes are a tmpfs made inside, hence here.
 */
static void bind_home_alias(void)
{
    /* Recursive: volumes mounted below the home come along (and a mount tree with locked children
     * cannot be bound without them in a user namespace: EINVAL). */
    if (mount(HOME_DIR, HOME_ALIAS, NULL, MS_BIND | MS_REC, NULL) < 0) die("binding %s at %s: %m", HOME_DIR, HOME_ALIAS);
    struct stat home, alias;
    if (stat(HOME_DIR, &home) < 0 || stat(HOME_ALIAS, &alias) < 0 || home.st_dev != alias.st_dev || home.st_ino != alias.st_ino)
        die("%s is not the home %s", HOME_ALIAS, HOME_DIR);
}

/*
 * What root inside a sandbox with --sudo may do, all of it over what its own user namespace maps
 * (the image's files and the sandbox's processes): Docker's default set without CAP_MKNOD,
 * CAP_NET_RAW, CAP_SETFCAP and CAP_SETPCAP. Never CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_NET_ADMIN,
 * CAP_SYS_RESOURCE or CAP_SYS_MODULE, and seccomp applies to root as to anyone.
 */
static const int ROOT_CAPS[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_AUDIT_WRITE};

static bool root_cap(int cap)
{
    for (size_t i = 0; i < sizeof ROOT_CAPS / sizeof *ROOT_CAPS; i++)
        if (ROOT_CAPS[i] == cap) return true;
    return false;
}

/*
 * Without --sudo every set ends empty. With it the bounding and permitted sets end as
 * ROOT_CAPS, the effective and the rest empty: the supervisor (uid 1000) uses none of them, and
 * under no_new_privs an exec keeps at most the permitted set, so only a child that became uid 0
 * (spawn.c) gets them, and a child that stays uid 1000 gets none.
 */
static void drop_capabilities(void)
{
    for (int cap = 0; cap < 64; cap++)
        if (!(setup_sudo && root_cap(cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("dropping capability %d from the bounding set: %m", cap);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) die("clearing ambient capabilities: %m");
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
    if (setup_sudo)
        for (size_t i = 0; i < sizeof ROOT_CAPS / sizeof *ROOT_CAPS; i++) data[ROOT_CAPS[i] / 32].permitted |= 1u << (ROOT_CAPS[i] % 32);
    if (syscall(SYS_capset, &hdr, data) < 0) die("capset: %m");
    /* Trust, then verify: every set must now be what it should. */
    struct __user_cap_data_struct got[2];
    if (syscall(SYS_capget, &hdr, got) < 0) die("capget: %m");
    for (int i = 0; i < 2; i++)
        if (got[i].effective || got[i].inheritable || got[i].permitted != data[i].permitted) die("capabilities other than the intended remain after capset");
    for (int cap = 0; cap < 64; cap++) {
        int in_bounding = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        bool want = setup_sudo && root_cap(cap);
        if ((in_bounding > 0) != want || (in_bounding < 0 && errno != EINVAL)) die("capability %d is %s the bounding set", cap, want ? "missing from" : "left in");
        int ambient = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
        if (ambient > 0) die("capability %d remains ambient", cap);
    }
}

/* In a child about to exec as root (between fork and exec: raw system calls only). */
int become_root(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0) return -1;
    for (int i = 0; i < 2; i++) data[i].effective = data[i].permitted;
    if (syscall(SYS_capset, &hdr, data) < 0) return -1;
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0) return -1;
    return 0;
}

static void install_filter(struct sock_filter *insns, size_t count)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) die("no_new_privs: %m");
    struct sock_fprog prog = {.len = (unsigned short)count, .filter = insns};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) die("installing the seccomp filter: %m");
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER) die("the seccomp filter is not in force");
}

void setup_sandbox(int argc, char **argv)
{
    keep_oom_handle();
    /* Not dumpable: no /proc/1/mem, fd, environ or ptrace for the processes we start. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) die("PR_SET_DUMPABLE: %m");
    if (getpid() != 1) die("must run as pid 1 of the sandbox's pid namespace (bwrap --as-pid-1)");
    int seccomp_fd;
    unsigned ptys;
    parse_args(argc, argv, &seccomp_fd, &ptys);
    static struct sock_filter insns[MAX_BPF_INSNS];
    size_t count = read_filter(seccomp_fd, insns);
    close_inherited();
    setup_umask = umask(0);
    umask(setup_umask);
    mount_devpts(ptys);
    bind_home_alias();
    drop_capabilities();
    install_filter(insns, count);
}
