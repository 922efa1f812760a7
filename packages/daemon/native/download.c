/*
 * fs.download: streams the tree at a path as a tar archive, produced as credit allows.
 * Names come from the sandbox's own tree, so they are hostile input: every lookup is
 * relative to an open directory and never follows a symlink, a regular file is opened
 * non-blocking and checked again (a FIFO swapped in cannot hang us), names are bounded and
 * escaped into pax records when ustar cannot hold them. Like packTree: entries sorted by
 * name, symlinks kept as symlinks, sockets, FIFOs and devices skipped.
 */
#include <dirent.h>
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
#include "handlers.h"
#include "path.h"
#include "stream.h"
#include "tar.h"
#include "util.h"

#define MAX_NAME 4095
#define MAX_DEPTH 2048
#define MAX_LISTING (32u << 20)
#define MAX_DIR_ENTRIES 1000000

struct level {
    int fd;
    buf_t names;
    size_t *order;
    size_t count, next, rel_len;
};

struct download {
    int64_t id;
    char root[PATH_BUF], rel[MAX_NAME + 2];
    struct level *levels;
    size_t depth;
    buf_t pending;
    size_t pending_off, pad;
    int fd;
    uint64_t left, entries, bytes;
    bool started, finished, single;
    struct err err;
};

static const char *names_at(const struct level *l, size_t i) { return (const char *)l->names.p + l->order[i]; }

static buf_t *sorting;
static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)sorting->p + *(const size_t *)a, (const char *)sorting->p + *(const size_t *)b);
}

static void full_path(const struct download *d, char *out)
{
    if (d->single || snprintf(out, PATH_BUF, "%s%s%s", d->root, d->rel[0] && strcmp(d->root, "/") ? "/" : "", d->rel) >= PATH_BUF)
        str_copy(out, PATH_BUF, d->root);
}

static int fail(struct download *d, int errnum, const char *syscall)
{
    char path[PATH_BUF];
    full_path(d, path);
    err_fs(&d->err, errnum, syscall, path);
    return -1;
}

static int push_level(struct download *d, int fd)
{
    if (d->depth == MAX_DEPTH) {
        close(fd);
        return fail(d, ELOOP, "scandir");
    }
    int listing = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *dir = listing < 0 ? NULL : fdopendir(listing);
    if (!dir) {
        int saved = errno;
        if (listing >= 0) close(listing);
        close(fd);
        return fail(d, saved, "scandir");
    }
    struct level l = {.fd = fd, .rel_len = strlen(d->rel)};
    l.names.limit = MAX_LISTING;
    buf_t offs = {0};
    struct dirent *de;
    int r = 0;
    errno = 0;
    while ((de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t at = l.names.len;
        if (l.count == MAX_DIR_ENTRIES || buf_put(&l.names, de->d_name, strlen(de->d_name) + 1) < 0 || buf_put(&offs, &at, sizeof at) < 0) {
            r = fail(d, E2BIG, "scandir");
            break;
        }
        l.count++;
        errno = 0;
    }
    if (r == 0 && errno) r = fail(d, errno, "scandir");
    closedir(dir);
    if (r < 0) {
        close(fd);
        buf_free(&l.names);
        buf_free(&offs);
        return -1;
    }
    l.order = (size_t *)offs.p;
    sorting = &l.names;
    if (l.count) qsort(l.order, l.count, sizeof *l.order, by_name);
    d->levels = realloc(d->levels, (d->depth + 1) * sizeof *d->levels);
    if (!d->levels) die("out of memory");
    d->levels[d->depth++] = l;
    return 0;
}

static void pop_level(struct download *d)
{
    struct level *l = &d->levels[--d->depth];
    close(l->fd);
    buf_free(&l->names);
    free(l->order);
}

static int header(struct download *d, enum tar_type type, const struct stat *st, uint64_t size, const char *link, size_t link_len)
{
    d->pending.len = d->pending_off = 0;
    if (tar_write_header(&d->pending, d->rel, strlen(d->rel), type, st->st_mode & 0777, size, st->st_mtim.tv_sec, link, link_len) < 0)
        return fail(d, ENAMETOOLONG, "lstat");
    d->entries++;
    return 0;
}

/* One entry at `name` below dirfd (d->rel already names it): 1 emitted, 0 skipped, -1 failed. */
static int visit(struct download *d, int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return fail(d, errno, "lstat");
    if (S_ISDIR(st.st_mode)) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return fail(d, errno, "scandir");
        if (d->rel[0] && header(d, TAR_DIR, &st, 0, NULL, 0) < 0) {
            close(fd);
            return -1;
        }
        return push_level(d, fd) < 0 ? -1 : 1;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
        if (n < 0) return fail(d, errno, "readlink");
        return header(d, TAR_SYMLINK, &st, 0, target, (size_t)n) < 0 ? -1 : 1;
    }
    if (!S_ISREG(st.st_mode)) return 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail(d, errno, "open");
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0; /* swapped for something else since the lstat: skipped like any special file */
    }
    if (header(d, TAR_FILE, &st, (uint64_t)st.st_size, NULL, 0) < 0) {
        close(fd);
        return -1;
    }
    d->fd = fd;
    d->left = (uint64_t)st.st_size;
    d->pad = (size_t)((512 - (d->left & 511)) & 511);
    d->bytes += d->left;
    return 1;
}

/* Prepares the next entry's header (and file), or the end-of-archive blocks. */
static int next_entry(struct download *d)
{
    if (!d->started) {
        d->started = true;
        char dir[PATH_BUF];
        const char *base;
        path_split(d->root, dir, sizeof dir, &base);
        struct stat st;
        if (lstat(d->root, &st) < 0) return fail(d, errno, "lstat");
        if (S_ISDIR(st.st_mode)) {
            d->rel[0] = 0;
            return visit(d, AT_FDCWD, d->root) < 0 ? -1 : 0;
        }
        /* A single file (or link) is named by its basename. */
        d->single = true;
        int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) return fail(d, errno, "lstat");
        snprintf(d->rel, sizeof d->rel, "%s", *base ? base : "/");
        int r = visit(d, dirfd, base);
        close(dirfd);
        if (r < 0) return -1;
        if (r > 0) return 0;
    }
    while (d->depth > 0) {
        struct level *l = &d->levels[d->depth - 1];
        if (l->next == l->count) {
            pop_level(d);
            continue;
        }
        const char *name = names_at(l, l->next++);
        size_t n = strlen(name);
        if (l->rel_len + 1 + n > MAX_NAME) {
            d->rel[l->rel_len] = 0;
            return fail(d, ENAMETOOLONG, "lstat");
        }
        d->rel[l->rel_len] = 0;
        snprintf(d->rel + l->rel_len, sizeof d->rel - l->rel_len, "%s%s", l->rel_len ? "/" : "", name);
        int r = visit(d, l->fd, name);
        if (r < 0) return -1;
        if (r > 0) return 0;
    }
    static const uint8_t end[1024];
    d->pending.len = d->pending_off = 0;
    if (buf_put(&d->pending, end, sizeof end) < 0) return fail(d, ENOMEM, "write");
    d->finished = true;
    return 0;
}

static ssize_t produce(struct outstream *s, uint8_t *buf, size_t cap)
{
    struct download *d = s->owner;
    size_t got = 0;
    while (got < cap) {
        if (d->pending_off < d->pending.len) {
            size_t k = MIN(cap - got, d->pending.len - d->pending_off);
            memcpy(buf + got, d->pending.p + d->pending_off, k);
            d->pending_off += k;
            got += k;
        } else if (d->fd >= 0 && d->left > 0) {
            ssize_t n = read(d->fd, buf + got, (size_t)MIN((uint64_t)(cap - got), d->left));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (n == 0) {
                    char path[PATH_BUF];
                    full_path(d, path);
                    err_set(&d->err, "FileSystem", 0, "'%s' shrank while it was being downloaded", path);
                } else {
                    fail(d, errno, "read");
                }
                break;
            }
            got += (size_t)n;
            d->left -= (uint64_t)n;
        } else if (d->fd >= 0) {
            close(d->fd);
            d->fd = -1;
        } else if (d->pad > 0) {
            size_t k = MIN(cap - got, d->pad);
            memset(buf + got, 0, k);
            d->pad -= k;
            got += k;
        } else if (d->finished) {
            return (ssize_t)got;
        } else if (next_entry(d) < 0) {
            break;
        }
    }
    if (d->err.code) {
        str_copy(s->reason, sizeof s->reason, d->err.msg);
        return -1;
    }
    return (ssize_t)got;
}

static void download_free(struct download *d)
{
    while (d->depth > 0) pop_level(d);
    free(d->levels);
    if (d->fd >= 0) close(d->fd);
    buf_free(&d->pending);
    free(d);
}

static void closed(struct outstream *s, enum out_end how)
{
    struct download *d = s->owner;
    if (how == OUT_EOF) {
        jw w;
        reply_begin(&w, d->id);
        jw_obj(&w);
        jw_key(&w, "entries");
        jw_int(&w, (int64_t)d->entries);
        jw_key(&w, "bytes");
        jw_int(&w, (int64_t)d->bytes);
        jw_obj_end(&w);
        reply_finish(&w, d->id);
    } else {
        if (how == OUT_ABORTED) err_set(&d->err, "StreamFailed", 0, "download of %s was aborted by the client", d->root);
        reply_err(d->id, &d->err);
    }
    download_free(d);
}

static const struct out_source DOWNLOAD_SOURCE = {produce, closed};

void h_download(int64_t id, const jv *p)
{
    struct download *d = xcalloc(1, sizeof *d);
    struct err e;
    uint32_t sid = 0;
    struct stat st;
    d->id = id;
    d->fd = -1;
    if (param_path(p, "path", true, d->root, &e) < 0 || param_stream(p, "stream", &sid, &e) < 0) goto fail;
    if (!sid) {
        err_set(&e, "InvalidParams", 0, "params.stream: required");
        goto fail;
    }
    if (lstat(d->root, &st) < 0) {
        err_fs(&e, errno, "lstat", d->root);
        goto fail;
    }
    out_open(sid, &DOWNLOAD_SOURCE, d, -1);
    return;
fail:
    if (sid) chan_abort(sid, e.msg);
    reply_err(id, &e);
    download_free(d);
}
