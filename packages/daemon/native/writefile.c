/*
 * fs.writeFile, atomically: the bytes go to a temporary file beside the target, which is
 * renamed over it only once everything arrived and was written. A client that disconnects,
 * a stream it aborts or a full disk leave the old content and no temporary file. An existing
 * file keeps its mode and owner; a new one gets the requested mode (default 0644 & ~umask).
 * Writing through a symlink replaces the file it points to, as open(2) would write to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "chan.h"
#include "fsutil.h"
#include "handlers.h"
#include "path.h"
#include "setup.h"
#include "stream.h"
#include "util.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

struct wjob {
    int64_t id;
    char path[PATH_BUF];
    int dirfd, fd;
    char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
    bool in_place, create_new, set_mode;
    mode_t mode;
    uint64_t written;
    struct write_behind behind;
    dev_t written_dev;
    ino_t written_ino;
    struct err err;
};

static void job_free(struct wjob *j)
{
    if (j->fd >= 0) close(j->fd);
    if (j->dirfd >= 0) close(j->dirfd);
    free(j);
}

static void fail_job(struct wjob *j, const struct err *e)
{
    if (j->fd >= 0) close(j->fd), j->fd = -1;
    if (j->tmp[0]) unlinkat(j->dirfd, j->tmp, 0);
    reply_err(j->id, e);
    job_free(j);
}

void write_behind(int fd, struct write_behind *w, size_t n)
{
    w->pending += n;
    if (w->pending < WRITE_BEHIND_CHUNK) return;
    off_t len = (off_t)w->pending;
    off_t end = lseek(fd, 0, SEEK_CUR);
    w->pending = 0;
    if (end < len) return;
    sync_file_range(fd, end - len, len, SYNC_FILE_RANGE_WRITE);
    if (w->len[0] && sync_file_range(fd, w->at[0], w->len[0], SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) == 0)
        posix_fadvise(fd, w->at[0], w->len[0], POSIX_FADV_DONTNEED);
    w->at[0] = w->at[1], w->len[0] = w->len[1];
    w->at[1] = end - len, w->len[1] = len;
}

static ssize_t sink_write(struct instream *s, const uint8_t *p, size_t n)
{
    struct wjob *j = s->owner;
    for (;;) {
        ssize_t k = write(j->fd, p, n);
        if (k >= 0) {
            j->written += (uint64_t)k;
            write_behind(j->fd, &j->behind, (size_t)k);
            return k;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return IO_AGAIN;
        err_set(&j->err, "FileSystem", errno, "%s: %s, write%s", errno_name(errno), errno_desc(errno), errno_hint(errno));
        str_copy(s->reason, sizeof s->reason, j->err.msg);
        return -1;
    }
}

static void sink_failed(struct instream *s, const char *reason, bool by_daemon)
{
    struct wjob *j = s->owner;
    if (by_daemon) err_set(&j->err, "StreamFailed", 0, "upload of %s was aborted: %s", j->path, reason);
    fail_job(j, &j->err);
}

static void sink_ended(struct instream *s)
{
    struct wjob *j = s->owner;
    struct err e;
    int fd = j->fd;
    j->fd = -1;
    /* Acknowledged means on disk: a write the disk cannot keep (the host's disk full under a
       sparse image) fails here with EIO or ENOSPC, not later and silently. */
    if (fdatasync(fd) < 0) {
        int err = errno;
        close(fd);
        err_fs(&e, err, "fsync", j->path);
        return fail_job(j, &e);
    }
    if (close(fd) < 0) {
        err_fs(&e, errno, "close", j->path);
        return fail_job(j, &e);
    }
    if (j->in_place) {
        if (j->set_mode && chmod(j->path, j->mode) < 0) {
            err_fs(&e, errno, "chmod", j->path);
            return fail_job(j, &e);
        }
    } else {
        /* Code inside could have put something else under the temporary name meanwhile. */
        struct stat named;
        if (fstatat(j->dirfd, j->tmp, &named, AT_SYMLINK_NOFOLLOW) < 0 || named.st_dev != j->written_dev || named.st_ino != j->written_ino) {
            err_set(&e, "FileSystem", EBUSY, "EBUSY: the temporary file of '%s' was replaced while it was written", j->path);
            return fail_job(j, &e);
        }
        int r = renameat2(j->dirfd, j->tmp, j->dirfd, j->name, j->create_new ? RENAME_NOREPLACE : 0);
        if (r < 0 && j->create_new && errno == EINVAL) {
            /* A file system without RENAME_NOREPLACE: link(2) refuses an existing name too. */
            r = linkat(j->dirfd, j->tmp, j->dirfd, j->name, 0);
            if (r == 0) unlinkat(j->dirfd, j->tmp, 0);
        }
        if (r < 0) {
            err_fs(&e, errno, errno == EEXIST ? "open" : "rename", j->path);
            return fail_job(j, &e);
        }
        j->tmp[0] = 0;
    }
    jw w;
    reply_begin(&w, j->id);
    jw_obj(&w);
    jw_key(&w, "bytesWritten");
    jw_int(&w, (int64_t)j->written);
    jw_obj_end(&w);
    reply_finish(&w, j->id);
    job_free(j);
}

static const struct in_sink WRITE_SINK = {sink_write, sink_ended, sink_failed};

/* Opens the directory of `path` and follows a symlink in the last component to its target. */
static int find_target(struct wjob *j, bool follow, struct stat *st, bool *exists)
{
    char dir[PATH_BUF];
    const char *base;
    path_split(j->path, dir, sizeof dir, &base);
    j->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) return -1;
    if (!*base) return errno = EISDIR, -1;
    if (strlen(base) > NAME_MAX) return errno = ENAMETOOLONG, -1;
    memcpy(j->name, base, strlen(base) + 1);
    for (int hops = 0;; hops++) {
        if (fstatat(j->dirfd, j->name, st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) return -1;
            *exists = false;
            return 0;
        }
        *exists = true;
        if (!follow || !S_ISLNK(st->st_mode)) return 0;
        if (hops == 40) return errno = ELOOP, -1;
        char target[PATH_MAX + 1];
        ssize_t n = readlinkat(j->dirfd, j->name, target, sizeof target - 1);
        if (n < 0) return -1;
        target[n] = 0;
        /* The link's own directory anchors a relative target, exactly as the kernel resolves it. */
        char *slash = strrchr(target, '/');
        const char *leaf = slash ? slash + 1 : target;
        if (!*leaf || !strcmp(leaf, ".") || !strcmp(leaf, "..")) return errno = EISDIR, -1;
        if (slash) {
            *slash = 0;
            int next = openat(j->dirfd, slash == target ? "/" : target, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (next < 0) return -1;
            close(j->dirfd);
            j->dirfd = next;
        }
        if (strlen(leaf) > NAME_MAX) return errno = ENAMETOOLONG, -1;
        memcpy(j->name, leaf, strlen(leaf) + 1);
    }
}

static int open_temp(struct wjob *j)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        char rnd[17];
        if (random_hex(rnd, 8) < 0) return -1;
        /* Hidden, beside the target, and short enough for any name the target may have. */
        snprintf(j->tmp, sizeof j->tmp, ".%.200s.sbx-%s.tmp", j->name, rnd);
        j->fd = openat(j->dirfd, j->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        struct stat st;
        if (j->fd >= 0 && fstat(j->fd, &st) == 0) {
            j->written_dev = st.st_dev;
            j->written_ino = st.st_ino;
            return 0;
        }
        if (j->fd >= 0) return -1;
        j->tmp[0] = 0;
        if (errno != EEXIST) return -1;
    }
    return -1;
}

static int prepare(struct wjob *j, bool append, bool create, const char **syscall)
{
    struct stat st;
    bool exists = false;
    mode_t fresh = j->set_mode ? j->mode : (0644 & ~setup_umask);
    *syscall = "open";
    if (append) {
        /* Appending cannot be made atomic by a rename without copying the file: it stays in place. */
        j->in_place = true;
        j->fd = open(j->path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC | (create ? O_CREAT : 0), fresh);
        return j->fd < 0 ? -1 : 0;
    }
    if (find_target(j, !j->create_new, &st, &exists) < 0) return -1;
    if (exists && j->create_new) return errno = EEXIST, -1;
    if (exists && S_ISDIR(st.st_mode)) return errno = EISDIR, -1;
    if (!exists && !create) return errno = ENOENT, -1;
    if (exists && !S_ISREG(st.st_mode)) {
        /* A device, FIFO or socket has no content to replace: write to it in place. */
        j->in_place = true;
        j->fd = openat(j->dirfd, j->name, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        return j->fd < 0 ? -1 : 0;
    }
    if (open_temp(j) < 0) return -1;
    if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(j->fd, st.st_uid, st.st_gid) < 0) {
        *syscall = "chown";
        return -1;
    }
    if (fchmod(j->fd, j->set_mode ? j->mode : exists ? st.st_mode & 07777 : fresh) < 0) {
        *syscall = "chmod";
        return -1;
    }
    return 0;
}

void h_write_file(int64_t id, const jv *p)
{
    struct wjob *j = xcalloc(1, sizeof *j);
    struct err e;
    uint32_t sid = 0;
    bool append, create, has_mode;
    int64_t mode = 0;
    j->id = id;
    j->fd = j->dirfd = -1;
    if (param_path(p, "path", true, j->path, &e) < 0 || param_stream(p, "stream", &sid, &e) < 0 ||
        param_int(p, "mode", 0, 07777, &has_mode, &mode, &e) < 0 || param_bool(p, "append", false, &append, &e) < 0 ||
        param_bool(p, "create", true, &create, &e) < 0 || param_bool(p, "createNew", false, &j->create_new, &e) < 0)
        goto fail;
    if (!sid) {
        err_set(&e, "InvalidParams", 0, "params.stream: required");
        goto fail;
    }
    j->set_mode = has_mode;
    j->mode = (mode_t)mode;
    const char *syscall;
    if (prepare(j, append, create, &syscall) < 0) {
        err_fs(&e, errno, syscall, j->path);
        if (j->fd >= 0) close(j->fd), j->fd = -1;
        if (j->tmp[0]) unlinkat(j->dirfd, j->tmp, 0);
        goto fail;
    }
    in_open(sid, &WRITE_SINK, j, j->in_place ? j->fd : -1);
    return;
fail:
    if (sid) chan_abort(sid, e.msg);
    reply_err(id, &e);
    job_free(j);
}
