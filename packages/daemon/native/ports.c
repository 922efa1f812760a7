/*
 * process.ports: the TCP ports a process and its descendants listen on, from the sandbox's
 * own /proc (its network namespace's /proc/net/tcp{,6} and each process's fd table). This is
 * how `httpReady` learns that a server came up, whatever runtime or framework started it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call.h"
#include "handlers.h"
#include "proc.h"
#include "util.h"

/* Bounds of one answer: listening sockets looked at, processes walked, ports reported. */
#define MAX_LISTEN 4096
#define MAX_PIDS 4096
#define MAX_PORTS 64

struct listen {
    unsigned long inode;
    int port;
};

static size_t read_listening(const char *path, struct listen *out, size_t n, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) return n;
    char line[512];
    if (!fgets(line, sizeof line, f)) goto done; /* the header */
    while (n < cap && fgets(line, sizeof line, f)) {
        char local[128];
        unsigned state;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &state, &inode) != 3) continue;
        char *colon = strrchr(local, ':');
        if (state != 0x0A || !colon || inode == 0) continue; /* 0A: TCP_LISTEN */
        out[n].inode = inode;
        out[n].port = (int)strtol(colon + 1, NULL, 16);
        n++;
    }
done:
    fclose(f);
    return n;
}

/* Appends the children of every thread of `pid` to pids (bounded). */
static size_t add_children(pid_t pid, pid_t *pids, size_t n, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *tasks = opendir(path);
    if (!tasks) return n;
    struct dirent *t;
    while (n < cap && (t = readdir(tasks))) {
        if (t->d_name[0] == '.') continue;
        char file[128];
        snprintf(file, sizeof file, "/proc/%d/task/%.20s/children", (int)pid, t->d_name);
        FILE *f = fopen(file, "re");
        if (!f) continue;
        int child;
        while (n < cap && fscanf(f, "%d", &child) == 1) pids[n++] = child;
        fclose(f);
    }
    closedir(tasks);
    return n;
}

static void add_port(int *ports, size_t *count, int port)
{
    for (size_t i = 0; i < *count; i++)
        if (ports[i] == port) return;
    if (*count < MAX_PORTS) ports[(*count)++] = port;
}

static void scan_fds(pid_t pid, const struct listen *ls, size_t nls, int *ports, size_t *count)
{
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir_path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char link[128], target[64];
        snprintf(link, sizeof link, "%s/%.20s", dir_path, e->d_name);
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k <= 0) continue;
        target[k] = 0;
        unsigned long inode;
        if (sscanf(target, "socket:[%lu]", &inode) != 1) continue;
        for (size_t i = 0; i < nls; i++)
            if (ls[i].inode == inode) add_port(ports, count, ls[i].port);
    }
    closedir(d);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

void h_ports(int64_t id, const jv *p)
{
    struct err e;
    bool present;
    int64_t pid = 0;
    if (param_int(p, "pid", 1, INT32_MAX, &present, &pid, &e) < 0) goto fail;
    if (!present) {
        err_set(&e, "InvalidParams", 0, "params.pid: required");
        goto fail;
    }
    bool running = procs_running((pid_t)pid);
    if (!running) {
        err_set(&e, "ProcessNotFound", 0, "no running process with pid %lld", (long long)pid);
        goto fail;
    }
    struct listen *ls = xmalloc(MAX_LISTEN * sizeof *ls);
    size_t nls = read_listening("/proc/net/tcp", ls, 0, MAX_LISTEN);
    nls = read_listening("/proc/net/tcp6", ls, nls, MAX_LISTEN);
    int ports[MAX_PORTS];
    size_t count = 0;
    if (nls > 0) {
        pid_t *pids = xmalloc(MAX_PIDS * sizeof *pids);
        size_t npids = 1;
        pids[0] = (pid_t)pid;
        for (size_t i = 0; i < npids; i++) {
            scan_fds(pids[i], ls, nls, ports, &count);
            npids = add_children(pids[i], pids, npids, MAX_PIDS);
        }
        free(pids);
    }
    free(ls);
    qsort(ports, count, sizeof ports[0], cmp_int);
    jw w;
    reply_begin(&w, id);
    jw_obj(&w);
    jw_key(&w, "ports");
    jw_arr(&w);
    for (size_t i = 0; i < count; i++) jw_int(&w, ports[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
    reply_finish(&w, id);
    return;
fail:
    reply_err(id, &e);
}
