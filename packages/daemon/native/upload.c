/*
 * fs.upload: unpacks the tar stream into a directory without ever writing outside it, with
 * the defences of the client's unpackTar (packages/client/src/tar/unpack.ts): absolute names,
 * '..', writes through symlinks, hardlinks leaving the tree, devices and FIFOs are refused;
 * symlinks are made, never followed; only permission bits are applied (no setuid, setgid,
 * sticky or ownership). On any failure, what this upload created is removed again. This file
 * is the call and its stream; unpack.c handles the entries.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "chan.h"
#include "fsutil.h"
#include "handlers.h"
#include "stream.h"
#include "upload.h"

static void upload_free(struct upload *u)
{
    if (u->fd >= 0) close(u->fd);
    if (u->destfd >= 0) close(u->destfd);
    tar_reader_free(&u->tar);
    buf_free(&u->created);
    free(u->made.slots);
    buf_free(&u->dirtimes);
    buf_free(&u->dirtime_at);
    free(u);
}

static void rollback_and_reply(struct upload *u, const struct err *e)
{
    if (u->fd >= 0) close(u->fd), u->fd = -1;
    struct err ignored;
    char scratch[PATH_BUF];
    /* Newest first: entries made inside a directory this upload made go with it anyway. */
    for (size_t end = u->created.len; end > 0;) {
        size_t start = end - 1;
        while (start > 0 && u->created.p[start - 1]) start--;
        const char *rel = (const char *)u->created.p + start;
        snprintf(scratch, sizeof scratch, "%s", rel);
        struct stat st;
        if (fstatat(u->destfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode)) rm_tree(u->destfd, rel, scratch, strlen(scratch), 0, &ignored);
            else unlinkat(u->destfd, rel, 0);
        }
        end = start;
    }
    if (u->made_dest[0]) {
        snprintf(scratch, sizeof scratch, "%s", u->made_dest);
        rm_tree(AT_FDCWD, u->made_dest, scratch, strlen(scratch), 0, &ignored);
    }
    reply_err(u->id, e);
    upload_free(u);
}

static ssize_t sink_write(struct instream *s, const uint8_t *p, size_t n)
{
    struct upload *u = s->owner;
    if (tar_feed(&u->tar, p, n, &UNPACK_EVENTS, u) < 0) {
        if (u->tar.error[0]) err_set(&u->err, "FileSystem", 0, "%s", u->tar.error);
        str_copy(s->reason, sizeof s->reason, u->err.msg);
        return -1;
    }
    return (ssize_t)n;
}

static void sink_failed(struct instream *s, const char *reason, bool by_daemon)
{
    struct upload *u = s->owner;
    if (by_daemon) err_set(&u->err, "StreamFailed", 0, "upload to %s was aborted: %s", u->dest, reason);
    rollback_and_reply(u, &u->err);
}

static void sink_ended(struct instream *s)
{
    struct upload *u = s->owner;
    if (tar_finish(&u->tar) < 0) {
        err_set(&u->err, "FileSystem", 0, "%s", u->tar.error);
        return rollback_and_reply(u, &u->err);
    }
    /* Directory times last (their children changed them), in reverse order like unpackTar. */
    for (size_t k = u->dirtime_at.len / sizeof(size_t); k > 0; k--) {
        size_t off;
        int64_t t;
        memcpy(&off, u->dirtime_at.p + (k - 1) * sizeof off, sizeof off);
        memcpy(&t, u->dirtimes.p + off, sizeof t);
        struct timespec ts[2] = {{t, 0}, {t, 0}};
        utimensat(u->destfd, (const char *)u->dirtimes.p + off + sizeof t, ts, AT_SYMLINK_NOFOLLOW);
    }
    /* Acknowledged means on disk, as for fs.writeFile: one syncfs for the whole tree (one journal
       commit, where a fdatasync per file would be one each). A write the disk cannot keep fails
       the upload here, and what it made is removed, rather than being lost later and silently. */
    int dir = openat(u->destfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* destfd is O_PATH, which syncfs refuses */
    if (dir < 0 || syncfs(dir) < 0) {
        struct err e;
        err_fs(&e, errno, "syncfs", u->dest);
        if (dir >= 0) close(dir);
        return rollback_and_reply(u, &e);
    }
    close(dir);
    jw w;
    reply_begin(&w, u->id);
    jw_obj(&w);
    jw_key(&w, "entries");
    jw_int(&w, (int64_t)u->entries);
    jw_key(&w, "bytes");
    jw_int(&w, (int64_t)u->bytes);
    jw_obj_end(&w);
    reply_finish(&w, u->id);
    upload_free(u);
}

static const struct in_sink UPLOAD_SINK = {sink_write, sink_ended, sink_failed};

/* mkdir -p that remembers the first directory it had to make, so a failure can take it back. */
static int make_dest(char *path, char *first_made)
{
    if (mkdir(path, 0777) == 0) {
        if (!first_made[0]) snprintf(first_made, PATH_BUF, "%s", path);
        return 0;
    }
    if (errno == EEXIST) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : (errno = EEXIST, -1);
    }
    if (errno != ENOENT) return -1;
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) return -1;
    *slash = 0;
    int r = make_dest(path, first_made);
    *slash = '/';
    if (r < 0) return -1;
    if (mkdir(path, 0777) == 0) return 0;
    return errno == EEXIST ? 0 : -1;
}

void h_upload(int64_t id, const jv *p)
{
    struct upload *u = xcalloc(1, sizeof *u);
    struct err e;
    uint32_t sid = 0;
    u->id = id;
    u->fd = u->destfd = -1;
    u->created.limit = u->dirtimes.limit = u->dirtime_at.limit = MAX_ROLLBACK;
    tar_reader_init(&u->tar);
    if (param_path(p, "path", true, u->dest, &e) < 0 || param_stream(p, "stream", &sid, &e) < 0) goto fail;
    if (!sid) {
        err_set(&e, "InvalidParams", 0, "params.stream: required");
        goto fail;
    }
    char work[PATH_BUF];
    snprintf(work, sizeof work, "%s", u->dest);
    if (make_dest(work, u->made_dest) < 0) {
        err_fs(&e, errno, "mkdir", u->dest);
        goto fail;
    }
    struct stat st;
    if (lstat(u->dest, &st) < 0 || !S_ISDIR(st.st_mode) || (u->destfd = open(u->dest, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        err_set(&e, "FileSystem", ENOTDIR, "'%s' is not a directory", u->dest);
        goto fail;
    }
    in_open(sid, &UPLOAD_SINK, u, -1);
    return;
fail:
    if (sid) chan_abort(sid, e.msg);
    reply_err(id, &e);
    upload_free(u);
}
