/*
 * sbx-run: runs the host tools the daemon needs (mkfs.ext4, mount, umount, losetup, ...) for it.
 * Every fork the daemon makes copies the page tables of its whole address space and holds its
 * event loop until the child has exec'd: 1-4 ms each on a loaded host, four or five per sandbox
 * (format, mount, direct I/O, and at the end umount), all of it time no client is served. This
 * process is small, forks in microseconds and waits for nothing but poll(2).
 *
 * The daemon starts it once, with its own environment, and speaks to it on stdin and stdout.
 * Integers are 32-bit big-endian; `len` counts the bytes after it:
 *
 *   request  [len][id][max][argv[0] NUL argv[1] NUL ...]      (PROGRAM looked up on PATH)
 *   reply    [len][id][kind][value][out len][out][err len][err]
 *
 * kind 0: exited, value its status; 1: killed by signal `value`; 2: could not be started, value
 * the errno; 3: printed more than `max` bytes on stdout or stderr and was killed (SIGKILL),
 * value 1 or 2 for which. A reply comes once the tool has exited and both of its pipes are
 * closed, as for Node's execFile. Its stdin is /dev/null. stdin closing (the daemon gone) ends
 * this process once the running tools have finished. A malformed request is the daemon's bug:
 * exit status 2 and a line on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REQUEST (1u << 20)
#define MAX_ARGS 4096
#define MAX_JOBS 512

enum { EXITED = 0, SIGNALED = 1, NOT_STARTED = 2, TOO_MUCH_OUTPUT = 3 };

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct job {
    uint32_t id, max;
    pid_t pid;
    int fds[3]; /* stdout, stderr, exec-error pipe; -1 once at EOF */
    struct buf out[2];
    bool reaped;
    int kind, value;
    int exec_errno;
};

static struct job *jobs[MAX_JOBS];
static int njobs;

static void die(const char *what)
{
    fprintf(stderr, "sbx-run: %s\n", what);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) die("out of memory");
    return p;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_add(b, x, 4);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void write_all(const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(STDOUT_FILENO, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) exit(0); /* the daemon is gone: nobody to answer */
        p += k;
        n -= (size_t)k;
    }
}

static void reply(uint32_t id, int kind, int value, const struct buf *out, const struct buf *err)
{
    struct buf r = {0};
    put32(&r, 0);
    put32(&r, id);
    put32(&r, (uint32_t)kind);
    put32(&r, (uint32_t)value);
    put32(&r, (uint32_t)out->len);
    if (out->len) buf_add(&r, out->p, out->len);
    put32(&r, (uint32_t)err->len);
    if (err->len) buf_add(&r, err->p, err->len);
    uint32_t len = (uint32_t)r.len - 4;
    r.p[0] = (uint8_t)(len >> 24), r.p[1] = (uint8_t)(len >> 16), r.p[2] = (uint8_t)(len >> 8), r.p[3] = (uint8_t)len;
    write_all(r.p, r.len);
    free(r.p);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void finish(int i)
{
    struct job *j = jobs[i];
    if (j->exec_errno) reply(j->id, NOT_STARTED, j->exec_errno, &j->out[0], &j->out[1]);
    else reply(j->id, j->kind, j->value, &j->out[0], &j->out[1]);
    for (int k = 0; k < 3; k++) close_fd(&j->fds[k]);
    free(j->out[0].p);
    free(j->out[1].p);
    free(j);
    jobs[i] = jobs[--njobs];
}

static bool done(const struct job *j)
{
    return j->reaped && j->fds[0] < 0 && j->fds[1] < 0 && j->fds[2] < 0;
}

/* The child: /dev/null in, the pipes out, the signal mask the runner changed put back. */
static void exec_child(char **argv, int out, int err, int errpipe, const sigset_t *mask)
{
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) goto fail;
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    execvp(argv[0], argv);
fail:;
    int e = errno;
    ssize_t ignored = write(errpipe, &e, sizeof e);
    (void)ignored;
    _exit(127);
}

static void start(uint32_t id, uint32_t max, char **argv, const sigset_t *mask)
{
    struct buf none = {0};
    if (njobs == MAX_JOBS) return reply(id, NOT_STARTED, EAGAIN, &none, &none);
    int out[2], err[2], ep[2];
    if (pipe2(out, O_CLOEXEC) < 0) return reply(id, NOT_STARTED, errno, &none, &none);
    if (pipe2(err, O_CLOEXEC) < 0) {
        int e = errno;
        close(out[0]), close(out[1]);
        return reply(id, NOT_STARTED, e, &none, &none);
    }
    if (pipe2(ep, O_CLOEXEC) < 0) {
        int e = errno;
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        return reply(id, NOT_STARTED, e, &none, &none);
    }
    pid_t pid = fork();
    if (pid == 0) exec_child(argv, out[1], err[1], ep[1], mask);
    int e = errno;
    close(out[1]), close(err[1]), close(ep[1]);
    if (pid < 0) {
        close(out[0]), close(err[0]), close(ep[0]);
        return reply(id, NOT_STARTED, e, &none, &none);
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) die("out of memory");
    j->id = id, j->max = max, j->pid = pid;
    j->fds[0] = out[0], j->fds[1] = err[0], j->fds[2] = ep[0];
    for (int k = 0; k < 3; k++) fcntl(j->fds[k], F_SETFL, O_NONBLOCK);
    jobs[njobs++] = j;
}

/* One complete request in `p` (after its length). */
static void request(uint8_t *p, uint32_t len, const sigset_t *mask)
{
    if (len < 9 || p[len - 1] != 0) die("malformed request (too short, or argv not NUL-terminated)");
    uint32_t id = get32(p), max = get32(p + 4);
    static char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (uint32_t at = 8; at < len; at += (uint32_t)strlen((char *)p + at) + 1) {
        if (argc == MAX_ARGS) die("malformed request (too many arguments)");
        argv[argc++] = (char *)p + at;
    }
    argv[argc] = NULL;
    if (!argv[0][0]) die("malformed request (empty program name)");
    start(id, max, argv, mask);
}

/* Reads what a job's fd `k` has; EOF closes it. */
static void drain(struct job *j, int k)
{
    uint8_t chunk[65536];
    for (;;) {
        ssize_t n = read(j->fds[k], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) return close_fd(&j->fds[k]);
        if (k == 2) {
            if (n >= (ssize_t)sizeof(int)) memcpy(&j->exec_errno, chunk, sizeof(int));
            continue;
        }
        if (j->out[k].len + (size_t)n > j->max) {
            /* execFile's maxBuffer: the tool is stopped, and says which stream overflowed. */
            if (j->kind != TOO_MUCH_OUTPUT) kill(j->pid, SIGKILL);
            j->kind = TOO_MUCH_OUTPUT, j->value = k + 1;
            continue;
        }
        buf_add(&j->out[k], chunk, (size_t)n);
    }
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < njobs; i++) {
            struct job *j = jobs[i];
            if (j->pid != pid) continue;
            j->reaped = true;
            if (j->kind == TOO_MUCH_OUTPUT) break;
            if (WIFEXITED(status)) j->kind = EXITED, j->value = WEXITSTATUS(status);
            else j->kind = SIGNALED, j->value = WTERMSIG(status);
            break;
        }
    }
}

int main(void)
{
    /* Whatever the daemon's own parent left it without close-on-exec is not the tools' to have. */
    if (close_range(3, ~0U, 0) < 0)
        for (int fd = 3; fd < 1024; fd++) close(fd);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, &old) < 0) die("cannot block SIGCHLD");
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die("cannot make a signalfd");
    signal(SIGPIPE, SIG_IGN);
    fcntl(STDIN_FILENO, F_SETFD, FD_CLOEXEC);
    fcntl(STDOUT_FILENO, F_SETFD, FD_CLOEXEC);

    struct buf in = {0};
    bool open_in = true;
    static struct pollfd pfd[2 + MAX_JOBS * 3];
    static struct job *owner[2 + MAX_JOBS * 3];
    static int which[2 + MAX_JOBS * 3];
    while (open_in || njobs) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        if (open_in) pfd[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        int first_job = n;
        for (int i = 0; i < njobs; i++)
            for (int k = 0; k < 3; k++)
                if (jobs[i]->fds[k] >= 0) owner[n] = jobs[i], which[n] = k, pfd[n++] = (struct pollfd){.fd = jobs[i]->fds[k], .events = POLLIN};
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll failed");
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {}
            reap();
        }
        for (int x = first_job; x < n; x++)
            if (pfd[x].revents) drain(owner[x], which[x]);
        if (open_in && pfd[1].revents) {
            uint8_t chunk[65536];
            ssize_t k = read(STDIN_FILENO, chunk, sizeof chunk);
            if (k < 0 && errno != EINTR && errno != EAGAIN) die("cannot read stdin");
            if (k == 0) open_in = false;
            if (k > 0) buf_add(&in, chunk, (size_t)k);
            size_t at = 0;
            while (in.len - at >= 4) {
                uint32_t len = get32(in.p + at);
                if (len > MAX_REQUEST) die("malformed request (longer than 1 MiB)");
                if (in.len - at - 4 < len) break;
                request(in.p + at + 4, len, &old);
                at += 4 + len;
            }
            memmove(in.p, in.p + at, in.len - at);
            in.len -= at;
        }
        for (int i = njobs - 1; i >= 0; i--)
            if (done(jobs[i])) finish(i);
    }
    return 0;
}
