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
#include <sys/stat.h>
#include <sys/wait.h>
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
static void child(struct spawn_req *r, const int fds[3], int err_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0) goto fail;
    if (chdir(r->cwd) < 0) goto fail;
    execve(r->file, r->argv, r->envp);
    if (errno == ENOEXEC) execve("/bin/sh", r->sh_argv, r->envp);
fail:;
    int code = errno;
    ssize_t ignored = write(err_fd, &code, sizeof code);
    (void)ignored;
    _exit(127);
}

static void close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]), fds[i] = -1;
}

static int start(struct spawn_req *r, pid_t *pid_out, int parent_end[3], struct err *e)
{
    /* child_end[i] becomes fd i in the child; parent_end[i] is our side of its pipe, if any. */
    int child_end[3] = {-1, -1, -1}, errp[2] = {-1, -1};
    for (int i = 0; i < 3; i++) {
        parent_end[i] = -1;
        if (r->sid[i]) {
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0) goto sys_fail;
            child_end[i] = i == 0 ? p[0] : p[1];
            parent_end[i] = i == 0 ? p[1] : p[0];
        } else if ((child_end[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC)) < 0) {
            goto sys_fail;
        }
    }
    if (pipe2(errp, O_CLOEXEC) < 0) goto sys_fail;
    if (oom_children_begin() < 0) goto sys_fail;
    pid_t pid = fork();
    if (pid == 0) child(r, child_end, errp[1]);
    int fork_errno = errno;
    oom_children_end();
    close_all(child_end, 3);
    close(errp[1]);
    if (pid < 0) {
        close(errp[0]);
        close_all(parent_end, 3);
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
        close_all(parent_end, 3);
        err_set(e, "SpawnFailed", code, "cannot run '%s': %s", r->cmd, errno_desc(code));
        return -1;
    }
    /* Our ends never block the loop; the child's stay blocking, as programs expect. */
    for (int i = 0; i < 3; i++)
        if (parent_end[i] >= 0 && fd_set_nonblock(parent_end[i]) < 0) die("cannot make a pipe non-blocking: %m");
    *pid_out = pid;
    return 0;
sys_fail:;
    int saved = errno;
    close_all(child_end, 3);
    close_all(parent_end, 3);
    close_all(errp, 2);
    err_set(e, "SpawnFailed", saved, "cannot run '%s': %s", r->cmd, errno_desc(saved));
    return -1;
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
    if (param_str(p, "cmd", true, &r.cmd, &e) < 0 || param_str(p, "cwd", false, &cwd, &e) < 0) goto fail;
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
    int ends[3];
    if (start(&r, &pid, ends, &e) < 0) goto fail;
    req_free(&r);
    idmap_put(&children, (uint32_t)pid, (void *)(intptr_t)pid);
    if (r.sid[0]) in_open(r.sid[0], &FD_SINK, NULL, ends[0]);
    for (int i = 1; i < 3; i++)
        if (r.sid[i]) out_open(r.sid[i], &FD_SOURCE, NULL, ends[i]);
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
    for (int i = 0; i < 3; i++)
        if (r.sid[i]) chan_abort(r.sid[i], e.msg);
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

void procs_reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        /* Orphans reparented to us (pid 1) are reaped too, and not reported. */
        if (!idmap_del(&children, (uint32_t)pid)) continue;
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
