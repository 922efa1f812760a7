/*
 * process.spawn and process.kill. Resolution and errors follow the Node supervisor (execvp's
 * PATH search with clear messages); the reply {pid} goes out only once exec has succeeded,
 * which a close-on-exec pipe tells us. Each child runs at oom_score_adj 1000 so the kernel's
 * OOM killer takes user processes before the supervisor.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "call.h"
#include "chan.h"
#include "handlers.h"
#include "idmap.h"
#include "path.h"
#include "proc.h"
#include "setup.h"
#include "stream.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* What the supervisor keeps of each child it started until it reaps it. */
struct child {
    pid_t pid;
    int pty; /* the terminal's master (for resize), or -1 */
};

static struct idmap children;

static bool executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static int resolve_cwd(const char *cwd, char *out, struct err *e)
{
    if (path_resolve(out, PATH_BUF, HOME_DIR, cwd ? cwd : ".") < 0) {
        err_set(e, "SpawnFailed", ENAMETOOLONG, "working directory is too long");
        return -1;
    }
    struct stat st;
    if (stat(out, &st) < 0) {
        err_set(e, "SpawnFailed", ENOENT, "working directory '%s' does not exist", out);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        err_set(e, "SpawnFailed", ENOTDIR, "working directory '%s' is not a directory", out);
        return -1;
    }
    return 0;
}

/* Finds the program the way execvp would, so a missing command is a clear error, not a hang. */
static int resolve_command(const char *cmd, const char *cwd, const char *path_var, char *out, struct err *e)
{
    if (strchr(cmd, '/')) {
        struct stat st;
        if (path_resolve(out, PATH_BUF, cwd, cmd) < 0 || stat(out, &st) < 0) {
            err_set(e, "SpawnFailed", ENOENT, "cannot run '%s': no such file", cmd);
            return -1;
        }
        if (!executable_file(out)) {
            err_set(e, "SpawnFailed", EACCES, "cannot run '%s': not an executable file", cmd);
            return -1;
        }
        return 0;
    }
    const char *search = path_var ? path_var : DEFAULT_PATH;
    for (const char *p = search; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n > 0 && n < PATH_BUF) {
            char dir[PATH_BUF];
            memcpy(dir, p, n);
            dir[n] = 0;
            char base[PATH_BUF];
            if (path_resolve(base, sizeof base, cwd, dir) == 0 && path_resolve(out, PATH_BUF, base, cmd) == 0 && executable_file(out)) return 0;
        }
        p += n;
        if (*p == ':') p++;
    }
    err_set(e, "SpawnFailed", ENOENT, "command not found: '%s' (searched PATH=%s)", cmd, search);
    return -1;
}

struct spawn_req {
    const char *cmd;
    char cwd[PATH_BUF], file[PATH_BUF];
    char **argv, **sh_argv, **envp;
    char *env_mem;
    uint32_t sid[3];
    /* A private channel: the child reads ctl_in's bytes on fd 3 and writes ctl_out's on fd 4 (pipes). */
    uint32_t ctl_in, ctl_out;
    bool pty;
    /* As uid 0 of the sandbox's own user namespace (setup_sudo only). */
    bool sudo;
    unsigned short cols, rows;
};

/* Our ends of the child's stdio: pipes, or dups of a pty master; the control pipes; the master itself. */
struct ends {
    int io[3];
    int ctl[2]; /* [0] writes the child's fd 3, [1] reads its fd 4 */
    int pty;
};

static void req_free(struct spawn_req *r)
{
    free(r->argv);
    free(r->sh_argv);
    free(r->envp);
    free(r->env_mem);
}

static int build_argv(struct spawn_req *r, const jv *args, struct err *e)
{
    size_t argc = 1 + (args ? args->len : 0);
    r->argv = xcalloc(argc + 1, sizeof *r->argv);
    r->sh_argv = xcalloc(argc + 2, sizeof *r->sh_argv);
    r->argv[0] = (char *)r->cmd;
    size_t i = 1;
    for (const jv *a = args ? args->first : NULL; a; a = a->next, i++) {
        if (a->type != J_STR || memchr(a->s, 0, a->len)) {
            err_set(e, "InvalidParams", 0, "params.args[%zu]: must be a string without NUL bytes", i - 1);
            return -1;
        }
        r->argv[i] = (char *)a->s;
    }
    /* For a script without #!, as execvp does: /bin/sh runs it. */
    r->sh_argv[0] = "/bin/sh";
    r->sh_argv[1] = r->file;
    for (size_t k = 1; k < argc; k++) r->sh_argv[k + 1] = r->argv[k];
    return 0;
}

static int build_env(struct spawn_req *r, const jv *env, const char **path_var, struct err *e)
{
    size_t count = env ? env->len : 0, bytes = 0;
    *path_var = NULL;
    for (const jv *v = env ? env->first : NULL; v; v = v->next) {
        if (v->type != J_STR || memchr(v->s, 0, v->len) || !v->key_len || memchr(v->key, 0, v->key_len) || memchr(v->key, '=', v->key_len)) {
            err_set(e, "InvalidParams", 0, "params.env: must map names (no '=' or NUL) to strings without NUL bytes");
            return -1;
        }
        bytes += v->key_len + 1 + v->len + 1;
        if (v->key_len == 4 && memcmp(v->key, "PATH", 4) == 0) *path_var = v->s;
    }
    r->envp = xcalloc(count + 1, sizeof *r->envp);
    r->env_mem = xmalloc(bytes + 1);
    char *d = r->env_mem;
    size_t i = 0;
    for (const jv *v = env ? env->first : NULL; v; v = v->next) {
        r->envp[i++] = d;
        memcpy(d, v->key, v->key_len);
        d += v->key_len;
        *d++ = '=';
        memcpy(d, v->s, v->len + 1);
        d += v->len + 1;
    }
    return 0;
}

/* Between fork and exec: only async-signal-safe calls. */
static void child(struct spawn_req *r, const int fds[3], const int ctl[2], int err_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* A terminal of its own: a new session whose controlling tty is the pty. */
    if (r->pty && (setsid() < 0 || ioctl(fds[0], TIOCSCTTY, 0) < 0)) goto fail;
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0) goto fail;
    /* Moved clear of 3 and 4 first, so that neither overwrites the other; then without close-on-exec. */
    if (ctl[0] >= 0) {
        int a = fcntl(ctl[0], F_DUPFD_CLOEXEC, 5), b = fcntl(ctl[1], F_DUPFD_CLOEXEC, 5);
        if (a < 0 || b < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0) goto fail;
    }
    if (r->sudo && become_root() < 0) goto fail;
    if (chdir(r->cwd) < 0) goto fail;
    execve(r->file, r->argv, r->envp);
    if (errno == ENOEXEC) execve("/bin/sh", r->sh_argv, r->envp);
fail:;
    int code = errno;
    ssize_t ignored = write(err_fd, &code, sizeof code);
    (void)ignored;
    _exit(127);
}

/* Closes each distinct fd once (a pty's slave stands for all three of a child's stdio). */
static void close_distinct(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] < 0) continue;
        int fd = fds[i];
        close(fd);
        for (size_t k = i; k < n; k++)
            if (fds[k] == fd) fds[k] = -1;
    }
}

/* A pty from the sandbox's own devpts: the master for us, its peer for the child. */
static int open_pty(struct spawn_req *r, int *master, int *slave)
{
    int unlock = 0;
    struct winsize ws = {.ws_row = r->rows, .ws_col = r->cols};
    *slave = -1;
    *master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*master < 0) return -1;
    if (ioctl(*master, TIOCSPTLCK, &unlock) < 0 || ioctl(*master, TIOCSWINSZ, &ws) < 0) goto fail;
    *slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0) goto fail;
    return 0;
fail:;
    int saved = errno;
    close(*master);
    *master = -1;
    errno = saved;
    return -1;
}

static int start(struct spawn_req *r, pid_t *pid_out, struct ends *ends, struct err *e)
{
    /* child_end[i] becomes fd i in the child; ends->io[i] is our side of it, if any. */
    int child_end[3] = {-1, -1, -1}, errp[2] = {-1, -1}, ctl_child[2] = {-1, -1};
    *ends = (struct ends){{-1, -1, -1}, {-1, -1}, -1};
    if (r->pty) {
        int slave;
        if (open_pty(r, &ends->pty, &slave) < 0) goto sys_fail;
        for (int i = 0; i < 3; i++) child_end[i] = slave;
        for (int i = 0; i < 2; i++)
            if (r->sid[i] && (ends->io[i] = fcntl(ends->pty, F_DUPFD_CLOEXEC, 3)) < 0) goto sys_fail;
    } else {
        for (int i = 0; i < 3; i++) {
            if (r->sid[i]) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0) goto sys_fail;
                child_end[i] = i == 0 ? p[0] : p[1];
                ends->io[i] = i == 0 ? p[1] : p[0];
            } else if ((child_end[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC)) < 0) {
                goto sys_fail;
            }
        }
    }
    if (r->ctl_in) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0) goto sys_fail;
        ctl_child[0] = in[0];
        ends->ctl[0] = in[1];
        if (pipe2(out, O_CLOEXEC) < 0) goto sys_fail;
        ctl_child[1] = out[1];
        ends->ctl[1] = out[0];
    }
    if (pipe2(errp, O_CLOEXEC) < 0) goto sys_fail;
    if (oom_children_begin() < 0) goto sys_fail;
    pid_t pid = fork();
    if (pid == 0) child(r, child_end, ctl_child, errp[1]);
    int fork_errno = errno;
    oom_children_end();
    close_distinct(child_end, 3);
    close_distinct(ctl_child, 2);
    close(errp[1]);
    if (pid < 0) {
        close(errp[0]);
        close_distinct(ends->io, 3);
        close_distinct(ends->ctl, 2);
        close_distinct(&ends->pty, 1);
        err_set(e, "SpawnFailed", fork_errno, "cannot run '%s': %s (fork)", r->cmd, errno_desc(fork_errno));
        return -1;
    }
    int code = 0;
    ssize_t n;
    do n = read(errp[0], &code, sizeof code);
    while (n < 0 && errno == EINTR);
    close(errp[0]);
    if (n > 0) {
        waitpid(pid, NULL, 0);
        close_distinct(ends->io, 3);
        close_distinct(ends->ctl, 2);
        close_distinct(&ends->pty, 1);
        err_set(e, "SpawnFailed", code, "cannot run '%s': %s", r->cmd, errno_desc(code));
        return -1;
    }
    /* Our ends never block the loop; the child's stay blocking, as programs expect. */
    int ours[] = {ends->io[0], ends->io[1], ends->io[2], ends->ctl[0], ends->ctl[1]};
    for (size_t i = 0; i < ARRAY_LEN(ours); i++)
        if (ours[i] >= 0 && fd_set_nonblock(ours[i]) < 0) die("cannot make a pipe non-blocking: %m");
    *pid_out = pid;
    return 0;
sys_fail:;
    int saved = errno;
    close_distinct(child_end, 3);
    close_distinct(ctl_child, 2);
    close_distinct(errp, 2);
    close_distinct(ends->io, 3);
    close_distinct(ends->ctl, 2);
    close_distinct(&ends->pty, 1);
    err_set(e, "SpawnFailed", saved, "cannot run '%s': %s", r->cmd, errno_desc(saved));
    return -1;
}

/* The terminal asked for, if any: {cols, rows} (default 80 x 24). */
static int parse_pty(const jv *p, struct spawn_req *r, struct err *e)
{
    const jv *pty = jv_get(p, "pty");
    if (!pty || pty->type == J_NULL) return 0;
    if (pty->type != J_OBJ) {
        err_set(e, "InvalidParams", 0, "params.pty: must be an object {cols, rows}");
        return -1;
    }
    bool present;
    int64_t cols = 80, rows = 24;
    if (param_int(pty, "cols", 1, 65535, &present, &cols, e) < 0 || param_int(pty, "rows", 1, 65535, &present, &rows, e) < 0) return -1;
    r->pty = true;
    r->cols = (unsigned short)cols;
    r->rows = (unsigned short)rows;
    return 0;
}

void h_spawn(int64_t id, const jv *p)
{
    struct spawn_req r = {0};
    struct err e;
    const char *cwd, *path_var;
    const jv *args = jv_get(p, "args"), *env = jv_get(p, "env");
    static const char *const stdio[3] = {"stdin", "stdout", "stderr"};
    for (int i = 0; i < 3; i++)
        if (param_stream(p, stdio[i], &r.sid[i], &e) < 0) goto fail;
    if (param_stream(p, "ctlIn", &r.ctl_in, &e) < 0 || param_stream(p, "ctlOut", &r.ctl_out, &e) < 0 || parse_pty(p, &r, &e) < 0) goto fail;
    if (!r.ctl_in != !r.ctl_out) {
        err_set(&e, "InvalidParams", 0, "params.ctlIn and params.ctlOut: both or neither");
        goto fail;
    }
    if (r.pty && r.sid[2]) {
        err_set(&e, "InvalidParams", 0, "params.stderr: must be null with a pty (the terminal carries both)");
        goto fail;
    }
    if (param_str(p, "cmd", true, &r.cmd, &e) < 0 || param_str(p, "cwd", false, &cwd, &e) < 0 || param_bool(p, "sudo", false, &r.sudo, &e) < 0) goto fail;
    if (r.sudo && !setup_sudo) {
        err_set(&e, "InvalidParams", 0, "params.sudo: this sandbox has no root to run as (only a sandbox booted from an image has)");
        goto fail;
    }
    if (!r.cmd[0]) {
        err_set(&e, "InvalidParams", 0, "params.cmd: must be a non-empty command");
        goto fail;
    }
    if ((args && args->type != J_ARR && args->type != J_NULL) || (env && env->type != J_OBJ && env->type != J_NULL)) {
        err_set(&e, "InvalidParams", 0, "params.args must be an array and params.env an object");
        goto fail;
    }
    if (args && args->type == J_NULL) args = NULL;
    if (env && env->type == J_NULL) env = NULL;
    if (build_env(&r, env, &path_var, &e) < 0 || resolve_cwd(cwd, r.cwd, &e) < 0) goto fail;
    if (resolve_command(r.cmd, r.cwd, path_var, r.file, &e) < 0 || build_argv(&r, args, &e) < 0) goto fail;
    pid_t pid;
    struct ends ends;
    if (start(&r, &pid, &ends, &e) < 0) goto fail;
    req_free(&r);
    struct child *c = xmalloc(sizeof *c);
    c->pid = pid;
    c->pty = ends.pty;
    idmap_put(&children, (uint32_t)pid, c);
    if (r.sid[0]) in_open(r.sid[0], &FD_SINK, NULL, ends.io[0]);
    if (r.sid[1]) out_open(r.sid[1], r.pty ? &PTY_SOURCE : &FD_SOURCE, NULL, ends.io[1]);
    if (r.sid[2]) out_open(r.sid[2], &FD_SOURCE, NULL, ends.io[2]);
    if (r.ctl_in) {
        in_open(r.ctl_in, &FD_SINK, NULL, ends.ctl[0]);
        out_open(r.ctl_out, &FD_SOURCE, NULL, ends.ctl[1]);
    }
    jw w;
    reply_begin(&w, id);
    jw_obj(&w);
    jw_key(&w, "pid");
    jw_int(&w, pid);
    jw_obj_end(&w);
    reply_finish(&w, id);
    return;
fail:
    req_free(&r);
    uint32_t streams[] = {r.sid[0], r.sid[1], r.sid[2], r.ctl_in, r.ctl_out};
    for (size_t i = 0; i < ARRAY_LEN(streams); i++)
        if (streams[i]) chan_abort(streams[i], e.msg);
    reply_err(id, &e);
}

void h_resize(int64_t id, const jv *p)
{
    struct err e;
    bool has_pid, has_cols, has_rows;
    int64_t pid = 0, cols = 0, rows = 0;
    if (param_int(p, "pid", 1, INT32_MAX, &has_pid, &pid, &e) < 0 || param_int(p, "cols", 1, 65535, &has_cols, &cols, &e) < 0 ||
        param_int(p, "rows", 1, 65535, &has_rows, &rows, &e) < 0)
        goto fail;
    if (!has_pid || !has_cols || !has_rows) {
        err_set(&e, "InvalidParams", 0, "params: pid, cols and rows are required");
        goto fail;
    }
    struct child *c = idmap_get(&children, (uint32_t)pid);
    if (!c) {
        err_set(&e, "ProcessNotFound", 0, "no running process with pid %lld", (long long)pid);
        goto fail;
    }
    if (c->pty < 0) {
        err_set(&e, "InvalidParams", 0, "params.pid: process %lld was not started with a pty", (long long)pid);
        goto fail;
    }
    /* The kernel sends SIGWINCH to the terminal's foreground process group. */
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    if (ioctl(c->pty, TIOCSWINSZ, &ws) < 0) {
        err_set(&e, "InternalError", 0, "cannot resize the terminal of pid %lld: %s", (long long)pid, errno_desc(errno));
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

static const struct {
    const char *name;
    int sig;
} SIGNALS[] = {
    {"SIGTERM", SIGTERM}, {"SIGKILL", SIGKILL}, {"SIGINT", SIGINT},   {"SIGHUP", SIGHUP},     {"SIGQUIT", SIGQUIT},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGSTOP", SIGSTOP}, {"SIGCONT", SIGCONT},   {"SIGTSTP", SIGTSTP},
    {"SIGALRM", SIGALRM}, {"SIGPIPE", SIGPIPE}, {"SIGWINCH", SIGWINCH}, {"SIGABRT", SIGABRT},
};

void h_kill(int64_t id, const jv *p)
{
    struct err e;
    bool present;
    int64_t pid = 0;
    const char *name;
    if (param_int(p, "pid", 1, INT32_MAX, &present, &pid, &e) < 0 || param_str(p, "signal", false, &name, &e) < 0) goto fail;
    if (!present) {
        err_set(&e, "InvalidParams", 0, "params.pid: required");
        goto fail;
    }
    int sig = SIGTERM;
    if (name) {
        size_t i = 0;
        while (i < ARRAY_LEN(SIGNALS) && strcmp(SIGNALS[i].name, name) != 0) i++;
        if (i == ARRAY_LEN(SIGNALS)) {
            err_set(&e, "InvalidParams", 0, "params.signal: not a signal the supervisor sends");
            goto fail;
        }
        sig = SIGNALS[i].sig;
    }
    /* Only our own unreaped children: a pid in the map cannot have been reused. */
    if (!idmap_get(&children, (uint32_t)pid)) {
        err_set(&e, "ProcessNotFound", 0, "no running process with pid %lld", (long long)pid);
        goto fail;
    }
    if (kill((pid_t)pid, sig) < 0) {
        err_set(&e, "ProcessNotFound", 0, "cannot signal pid %lld: kill %s", (long long)pid, errno_name(errno));
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

static void signal_name(int sig, char *out, size_t cap)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev) snprintf(out, cap, "SIG%s", abbrev);
    else if (sig == SIGRTMIN) snprintf(out, cap, "SIGRTMIN");
    else if (sig == SIGRTMAX) snprintf(out, cap, "SIGRTMAX");
    else snprintf(out, cap, "SIGRT%d", sig);
}

bool procs_running(pid_t pid) { return pid > 0 && idmap_get(&children, (uint32_t)pid) != NULL; }

void procs_reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        /* Orphans reparented to us (pid 1) are reaped too, and not reported. */
        struct child *c = idmap_del(&children, (uint32_t)pid);
        if (!c) continue;
        if (c->pty >= 0) close(c->pty);
        free(c);
        jw w;
        jw_init(&w, 4096);
        jw_obj(&w);
        jw_key(&w, "t");
        jw_cstr(&w, "exit");
        jw_key(&w, "pid");
        jw_int(&w, pid);
        jw_key(&w, "code");
        if (WIFEXITED(status)) jw_int(&w, WEXITSTATUS(status));
        else jw_null(&w);
        jw_key(&w, "signal");
        if (WIFSIGNALED(status)) {
            char name[32];
            signal_name(WTERMSIG(status), name, sizeof name);
            jw_cstr(&w, name);
        } else {
            jw_null(&w);
        }
        jw_obj_end(&w);
        chan_msg(&w);
        jw_free(&w);
    }
}
