/*
 * The calls that only look: stat, lstat, readDir, readLink and realPath. Each runs as the
 * sandbox user inside the sandbox, so the kernel confines every path; results and errors
 * match the Node supervisor's (readDir sorted by name, like libuv's scandir).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "call.h"
#include "fsutil.h"
#include "handlers.h"
#include "path.h"
#include "util.h"

#define MAX_DIR_ENTRIES 100000

static double ms(struct statx_timestamp t) { return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6; }

void jw_file_info(jw *w, const struct statx *st)
{
    mode_t m = st->stx_mode;
    jw_obj(w);
    jw_key(w, "isFile");
    jw_bool(w, S_ISREG(m));
    jw_key(w, "isDirectory");
    jw_bool(w, S_ISDIR(m));
    jw_key(w, "isSymlink");
    jw_bool(w, S_ISLNK(m));
    jw_key(w, "isBlockDevice");
    jw_bool(w, S_ISBLK(m));
    jw_key(w, "isCharDevice");
    jw_bool(w, S_ISCHR(m));
    jw_key(w, "isFifo");
    jw_bool(w, S_ISFIFO(m));
    jw_key(w, "isSocket");
    jw_bool(w, S_ISSOCK(m));
    jw_key(w, "size");
    jw_int(w, (int64_t)st->stx_size);
    jw_key(w, "mtime");
    jw_double(w, ms(st->stx_mtime));
    jw_key(w, "atime");
    jw_double(w, ms(st->stx_atime));
    jw_key(w, "ctime");
    jw_double(w, ms(st->stx_ctime));
    jw_key(w, "birthtime");
    if ((st->stx_mask & STATX_BTIME) && (st->stx_btime.tv_sec || st->stx_btime.tv_nsec)) jw_double(w, ms(st->stx_btime));
    else jw_null(w);
    jw_key(w, "mode");
    jw_int(w, m);
    jw_key(w, "dev");
    jw_int(w, (int64_t)makedev(st->stx_dev_major, st->stx_dev_minor));
    jw_key(w, "ino");
    jw_int(w, (int64_t)(st->stx_ino & INT64_MAX));
    jw_key(w, "nlink");
    jw_int(w, st->stx_nlink);
    jw_key(w, "uid");
    jw_int(w, st->stx_uid);
    jw_key(w, "gid");
    jw_int(w, st->stx_gid);
    jw_key(w, "rdev");
    jw_int(w, (int64_t)makedev(st->stx_rdev_major, st->stx_rdev_minor));
    jw_key(w, "blksize");
    jw_int(w, st->stx_blksize);
    jw_key(w, "blocks");
    jw_int(w, (int64_t)st->stx_blocks);
    jw_obj_end(w);
}

void reply_file_info(int64_t id, const struct statx *st)
{
    jw w;
    reply_begin(&w, id);
    jw_file_info(&w, st);
    reply_finish(&w, id);
}

static void stat_common(int64_t id, const jv *p, bool follow)
{
    char path[PATH_BUF];
    struct err e;
    struct statx st;
    if (param_path(p, "path", true, path, &e) < 0) goto fail;
    if (statx(AT_FDCWD, path, follow ? 0 : AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &st) < 0) {
        err_fs(&e, errno, follow ? "stat" : "lstat", path);
        goto fail;
    }
    reply_file_info(id, &st);
    return;
fail:
    reply_err(id, &e);
}

void h_stat(int64_t id, const jv *p) { stat_common(id, p, true); }
void h_lstat(int64_t id, const jv *p) { stat_common(id, p, false); }

struct dent {
    size_t name;
    unsigned char type;
};

static buf_t *sort_names;
static int cmp_dent(const void *a, const void *b)
{
    const struct dent *x = a, *y = b;
    return strcmp((const char *)sort_names->p + x->name, (const char *)sort_names->p + y->name);
}

void h_read_dir(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    buf_t names = {0}, ents = {0};
    DIR *d = NULL;
    if (param_path(p, "path", true, path, &e) < 0) goto fail;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || !(d = fdopendir(fd))) {
        err_fs(&e, errno, "scandir", path);
        if (fd >= 0) close(fd);
        goto fail;
    }
    struct dirent *de;
    size_t count = 0;
    errno = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (++count > MAX_DIR_ENTRIES) {
            err_set(&e, "FileSystem", E2BIG, "E2BIG: directory has more than %d entries, scandir '%s'", MAX_DIR_ENTRIES, path);
            goto fail;
        }
        unsigned char type = de->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                type = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
        }
        struct dent ent = {names.len, type};
        if (buf_put(&names, de->d_name, strlen(de->d_name) + 1) < 0 || buf_put(&ents, &ent, sizeof ent) < 0) {
            err_fs(&e, ENOMEM, "scandir", path);
            goto fail;
        }
        errno = 0;
    }
    if (errno) {
        err_fs(&e, errno, "scandir", path);
        goto fail;
    }
    sort_names = &names;
    if (count) qsort(ents.p, count, sizeof(struct dent), cmp_dent);
    jw w;
    reply_begin(&w, id);
    jw_arr(&w);
    for (size_t i = 0; i < count; i++) {
        const struct dent *ent = (const struct dent *)ents.p + i;
        const char *name = (const char *)names.p + ent->name;
        jw_obj(&w);
        jw_key(&w, "name");
        jw_cstr(&w, name);
        jw_key(&w, "isFile");
        jw_bool(&w, ent->type == DT_REG);
        jw_key(&w, "isDirectory");
        jw_bool(&w, ent->type == DT_DIR);
        jw_key(&w, "isSymlink");
        jw_bool(&w, ent->type == DT_LNK);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    reply_finish(&w, id);
    closedir(d);
    buf_free(&names);
    buf_free(&ents);
    return;
fail:
    if (d) closedir(d);
    buf_free(&names);
    buf_free(&ents);
    reply_err(id, &e);
}

void reply_string(int64_t id, const char *s)
{
    jw w;
    reply_begin(&w, id);
    jw_cstr(&w, s);
    reply_finish(&w, id);
}

void h_read_link(int64_t id, const jv *p)
{
    char path[PATH_BUF], target[PATH_MAX + 1];
    struct err e;
    if (param_path(p, "path", true, path, &e) < 0) goto fail;
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) {
        err_fs(&e, errno, "readlink", path);
        goto fail;
    }
    target[n] = 0;
    reply_string(id, target);
    return;
fail:
    reply_err(id, &e);
}

void h_real_path(int64_t id, const jv *p)
{
    char path[PATH_BUF], real[PATH_MAX];
    struct err e;
    if (param_path(p, "path", true, path, &e) < 0) goto fail;
    if (!realpath(path, real)) {
        err_fs(&e, errno, "realpath", path);
        goto fail;
    }
    reply_string(id, real);
    return;
fail:
    reply_err(id, &e);
}

