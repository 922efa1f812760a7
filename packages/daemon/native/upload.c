/*
 * fs.upload: unpacks the tar stream into a directory without ever writing outside it, with
 * the defences of the client's unpackTar (packages/client/src/tar/unpack.ts): absolute names,
 * '..', writes through symlinks, hardlinks leaving the tree, devices and FIFOs are refused;
 * symlinks are made, never followed; only permission bits are applied (no setuid, setgid,
 * sticky or ownership). On any failure, what this upload created is removed again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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
#include "stream.h"
#include "tar.h"
#include "util.h"

#define MAX_ENTRIES 1000000

struct upload {
    int64_t id;
    char dest[PATH_BUF], made_dest[PATH_BUF];
    int destfd, fd;
    struct tar_reader tar;
    buf_t created;  /* relative paths, NUL-terminated, in creation order */
    buf_t dirtimes; /* (int64 mtime, relative path NUL) records */
    buf_t dirtime_at; /* offsets of those records */
    uint64_t entries, bytes, file_bytes;
    uint32_t mode;
    int64_t mtime;
    bool has_mtime;
    char rel[PATH_MAX];
    struct err err;
};

static int refuse(struct upload *u, const char *name, size_t name_len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* TarEntryError: "refusing tar entry '<name>': <reason>", errno EINVAL. */
static int refuse(struct upload *u, const char *name, size_t name_len, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    const char *nul = memchr(name, 0, name_len);
    size_t shown = utf8_prefix(name, nul ? (size_t)(nul - name) : name_len, 512);
    err_set(&u->err, "FileSystem", EINVAL, "refusing tar entry '%.*s': %s", (int)shown, name, reason);
    return -1;
}

static int fs_fail(struct upload *u, int errnum, const char *syscall, const char *rel)
{
    char full[PATH_BUF];
    if (snprintf(full, sizeof full, "%s/%s", u->dest, rel) >= (int)sizeof full) str_copy(full, sizeof full, u->dest);
    err_fs(&u->err, errnum, syscall, full);
    return -1;
}

/* entryParts: the name's components, or a refusal saying why it would escape. */
static int entry_parts(struct upload *u, const char *name, size_t len, char *rel, size_t *count)
{
    if (memchr(name, 0, len)) return refuse(u, name, len, "contains a NUL byte");
    if (len && name[0] == '/') return refuse(u, name, len, "is an absolute path");
    size_t out = 0, n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && name[j] != '/') j++;
        size_t k = j - i;
        if (k == 2 && name[i] == '.' && name[i + 1] == '.') return refuse(u, name, len, "contains '..' and would escape the target directory");
        if (k > 0 && !(k == 1 && name[i] == '.')) {
            if (out + k + 2 > PATH_MAX) return refuse(u, name, len, "is too long");
            if (out) rel[out++] = '/';
            memcpy(rel + out, name + i, k);
            out += k;
            n++;
        }
        i = j + 1;
    }
    rel[out] = 0;
    *count = n;
    return 0;
}

static int record(buf_t *list, const char *rel) { return buf_put(list, rel, strlen(rel) + 1); }

/* The directory holding the last component of rel, made as needed and reached without symlinks. */
static int parent_of(struct upload *u, const char *name, size_t name_len, char *rel, int *out)
{
    int dir = fcntl(u->destfd, F_DUPFD_CLOEXEC, 0);
    if (dir < 0) return fs_fail(u, errno, "open", rel);
    char *part = rel;
    for (char *slash; (slash = strchr(part, '/'));) {
        *slash = 0;
        struct stat st;
        int r = 0;
        if (fstatat(dir, part, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) r = fs_fail(u, errno, "lstat", rel);
            else if (mkdirat(dir, part, 0755) < 0) r = fs_fail(u, errno, "mkdir", rel);
            else if (record(&u->created, rel) < 0) r = fs_fail(u, ENOMEM, "mkdir", rel);
        } else if (S_ISLNK(st.st_mode)) {
            r = refuse(u, name, name_len, "'%s' is a symlink; refusing to write through it", part);
        } else if (!S_ISDIR(st.st_mode)) {
            r = refuse(u, name, name_len, "'%s' is not a directory", part);
        }
        int next = r < 0 ? -1 : openat(dir, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (r == 0 && next < 0) r = refuse(u, name, name_len, "'%s' is a symlink; refusing to write through it", part);
        *slash = '/';
        close(dir);
        if (r < 0) return -1;
        dir = next;
        part = slash + 1;
    }
    *out = dir;
    return 0;
}

static const char *leaf(const char *rel)
{
    const char *s = strrchr(rel, '/');
    return s ? s + 1 : rel;
}

static int clear_for_replace(struct upload *u, int dir, const char *name, size_t name_len, const char *rel)
{
    struct stat st;
    if (fstatat(dir, leaf(rel), &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : fs_fail(u, errno, "lstat", rel);
    if (S_ISDIR(st.st_mode)) return refuse(u, name, name_len, "a directory already stands there");
    return unlinkat(dir, leaf(rel), 0) < 0 ? fs_fail(u, errno, "unlink", rel) : 0;
}

static int on_directory(struct upload *u, const struct tar_entry *e, int dir, const char *rel)
{
    struct stat st;
    mode_t mode = (e->mode & 0777) | 0700;
    if (fstatat(dir, leaf(rel), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT) return fs_fail(u, errno, "lstat", rel);
        if (mkdirat(dir, leaf(rel), mode) < 0) return fs_fail(u, errno, "mkdir", rel);
        if (record(&u->created, rel) < 0) return fs_fail(u, ENOMEM, "mkdir", rel);
    } else if (!S_ISDIR(st.st_mode)) {
        return refuse(u, e->name, e->name_len, "something other than a directory already stands there");
    }
    int fd = openat(dir, leaf(rel), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, mode) < 0) {
        int saved = errno;
        if (fd >= 0) close(fd);
        return fs_fail(u, saved, "chmod", rel);
    }
    close(fd);
    size_t at = u->dirtimes.len;
    if (e->has_mtime && (buf_put(&u->dirtime_at, &at, sizeof at) < 0 || buf_put(&u->dirtimes, &e->mtime, sizeof e->mtime) < 0 ||
                         record(&u->dirtimes, rel) < 0))
        return fs_fail(u, ENOMEM, "utime", rel);
    return 0;
}

static int on_hardlink(struct upload *u, const struct tar_entry *e, int dir, const char *rel)
{
    char target[PATH_MAX];
    size_t count;
    if (entry_parts(u, e->link ? e->link : "", e->link ? e->link_len : 0, target, &count) < 0) return -1;
    if (count == 0) return refuse(u, e->name, e->name_len, "hardlink without a target");
    int tdir;
    if (parent_of(u, e->name, e->name_len, target, &tdir) < 0) return -1;
    struct stat st;
    int r = 0;
    if (fstatat(tdir, leaf(target), &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        r = refuse(u, e->name, e->name_len, "hardlink target '%.*s' is not a file unpacked into the target directory", (int)MIN(e->link_len, 512), e->link);
    if (r == 0) r = clear_for_replace(u, dir, e->name, e->name_len, rel);
    if (r == 0 && linkat(tdir, leaf(target), dir, leaf(rel), 0) < 0) r = fs_fail(u, errno, "link", rel);
    if (r == 0 && record(&u->created, rel) < 0) r = fs_fail(u, ENOMEM, "link", rel);
    close(tdir);
    return r;
}

static int on_entry(void *ctx, const struct tar_entry *e)
{
    struct upload *u = ctx;
    size_t count;
    if (++u->entries > MAX_ENTRIES) return refuse(u, e->name, e->name_len, "archive has more than %d entries", MAX_ENTRIES);
    if (entry_parts(u, e->name, e->name_len, u->rel, &count) < 0) return -1;
    if (count == 0) return e->type == TAR_DIR ? 0 : refuse(u, e->name, e->name_len, "names the target directory itself");
    int dir;
    if (parent_of(u, e->name, e->name_len, u->rel, &dir) < 0) return -1;
    int r = 0;
    switch (e->type) {
    case TAR_DIR:
        r = on_directory(u, e, dir, u->rel);
        break;
    case TAR_FILE:
    case TAR_CONTIG:
        if ((r = clear_for_replace(u, dir, e->name, e->name_len, u->rel)) < 0) break;
        u->fd = openat(dir, leaf(u->rel), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, e->mode & 0777);
        if (u->fd < 0) r = fs_fail(u, errno, "open", u->rel);
        else if (record(&u->created, u->rel) < 0) r = fs_fail(u, ENOMEM, "open", u->rel);
        u->mode = e->mode & 0777;
        u->mtime = e->mtime;
        u->has_mtime = e->has_mtime;
        u->file_bytes = 0;
        break;
    case TAR_SYMLINK:
        if (!e->link || e->link_len == 0) r = refuse(u, e->name, e->name_len, "symlink without a target");
        else if (memchr(e->link, 0, e->link_len)) r = refuse(u, e->name, e->name_len, "symlink target contains a NUL byte");
        else if ((r = clear_for_replace(u, dir, e->name, e->name_len, u->rel)) == 0 && symlinkat(e->link, dir, leaf(u->rel)) < 0)
            r = fs_fail(u, errno, "symlink", u->rel);
        else if (r == 0 && record(&u->created, u->rel) < 0)
            r = fs_fail(u, ENOMEM, "symlink", u->rel);
        break;
    case TAR_LINK:
        r = on_hardlink(u, e, dir, u->rel);
        break;
    default:
        r = refuse(u, e->name, e->name_len, "is a %s; only files, directories, symlinks and hardlinks are allowed", tar_type_name(e));
    }
    close(dir);
    return r;
}

static int on_data(void *ctx, const uint8_t *p, size_t n)
{
    struct upload *u = ctx;
    if (u->fd < 0) return 0; /* the body of a link or special entry: skipped */
    if (write_full(u->fd, p, n) < 0) return fs_fail(u, errno, "write", u->rel);
    u->file_bytes += n;
    return 0;
}

static int on_end(void *ctx)
{
    struct upload *u = ctx;
    if (u->fd < 0) return 0;
    int fd = u->fd, r = 0;
    u->fd = -1;
    struct timespec ts[2] = {{u->mtime, 0}, {u->mtime, 0}};
    if (fchmod(fd, u->mode) < 0) r = fs_fail(u, errno, "chmod", u->rel);
    else if (u->has_mtime && futimens(fd, ts) < 0) r = fs_fail(u, errno, "utime", u->rel);
    if (close(fd) < 0 && r == 0) r = fs_fail(u, errno, "close", u->rel);
    u->bytes += u->file_bytes;
    return r;
}

static const struct tar_events EVENTS = {on_entry, on_data, on_end};

static void upload_free(struct upload *u)
{
    if (u->fd >= 0) close(u->fd);
    if (u->destfd >= 0) close(u->destfd);
    tar_reader_free(&u->tar);
    buf_free(&u->created);
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
    if (tar_feed(&u->tar, p, n, &EVENTS, u) < 0) {
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
