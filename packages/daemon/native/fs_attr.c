/*
 * The calls that change what a file is rather than where it is: truncate, utime, chown, and
 * the umask every later file call and spawn starts from. Paths resolve as in every other
 * call (param_path), and the kernel confines them to the sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "fsutil.h"
#include "handlers.h"
#include "path.h"
#include "setup.h"

/* Times in seconds since the epoch, as the protocol allows them. */
#define MAX_SECONDS 1e11

int param_length(const jv *p, const char *key, off_t *out, struct err *e)
{
    bool present;
    int64_t len = 0;
    if (param_int(p, key, 0, INT64_MAX, &present, &len, e) < 0) return -1;
    *out = (off_t)len;
    return 0;
}

int param_times(const jv *p, struct timespec ts[2], struct err *e)
{
    static const char *const keys[2] = {"atime", "mtime"};
    for (int i = 0; i < 2; i++) {
        double s;
        if (param_double(p, keys[i], -MAX_SECONDS, MAX_SECONDS, &s, e) < 0) return -1;
        double whole = floor(s);
        ts[i].tv_sec = (time_t)whole;
        ts[i].tv_nsec = (long)((s - whole) * 1e9);
        if (ts[i].tv_nsec > 999999999) ts[i].tv_nsec = 999999999;
    }
    return 0;
}

void h_truncate(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    off_t len;
    if (param_path(p, "path", true, path, &e) < 0 || param_length(p, "len", &len, &e) < 0) goto fail;
    if (truncate(path, len) < 0) {
        err_fs(&e, errno, "truncate", path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_utime(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    struct timespec ts[2];
    if (param_path(p, "path", true, path, &e) < 0 || param_times(p, ts, &e) < 0) goto fail;
    if (utimensat(AT_FDCWD, path, ts, 0) < 0) {
        err_fs(&e, errno, "utime", path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

/* A uid or gid, or null (absent) for "unchanged": -1 to chown(2). */
static int param_id(const jv *p, const char *key, uid_t *out, struct err *e)
{
    bool present;
    int64_t v = 0;
    if (param_int(p, key, 0, 0xfffffffe, &present, &v, e) < 0) return -1;
    *out = present ? (uid_t)v : (uid_t)-1;
    return 0;
}

void h_chown(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    uid_t uid, gid;
    if (param_path(p, "path", true, path, &e) < 0 || param_id(p, "uid", &uid, &e) < 0 || param_id(p, "gid", &gid, &e) < 0) goto fail;
    if (chown(path, uid, (gid_t)gid) < 0) {
        err_fs(&e, errno, "chown", path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_umask(int64_t id, const jv *p)
{
    struct err e;
    bool present;
    int64_t mask = 0;
    if (param_int(p, "mask", 0, 0777, &present, &mask, &e) < 0) {
        reply_err(id, &e);
        return;
    }
    mode_t before = setup_umask;
    if (present) {
        /* The supervisor's own: new files of later calls, and every process spawned from now on. */
        setup_umask = (mode_t)mask;
        umask(setup_umask);
    }
    jw w;
    reply_begin(&w, id);
    jw_int(&w, before);
    reply_finish(&w, id);
}
