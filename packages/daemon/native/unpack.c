/*
 * The entries of an fs.upload, each checked the way the client's unpackTar checks them: a
 * name must stay below the target ('..' and absolute names refused), every directory on the
 * way must be a real one reached without symlinks, hardlinks may only point at files unpacked
 * there, and nothing but files, directories, symlinks and hardlinks is made. Only permission
 * bits are applied. What is made is recorded so that a failure can take it back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "upload.h"

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

static size_t dirset_slot(const struct dirset *d, uint64_t dev, uint64_t ino)
{
    size_t i = (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ dev) & (d->cap - 1);
    while (d->slots[i][0] && !(d->slots[i][0] == dev + 1 && d->slots[i][1] == ino)) i = (i + 1) & (d->cap - 1);
    return i;
}

static bool dirset_has(const struct dirset *d, uint64_t dev, uint64_t ino)
{
    return d->cap && d->slots[dirset_slot(d, dev, ino)][0];
}

static void dirset_add(struct dirset *d, uint64_t dev, uint64_t ino)
{
    if ((d->count + 1) * 2 > d->cap) {
        struct dirset bigger = {xcalloc(d->cap ? d->cap * 2 : 64, sizeof *d->slots), d->cap ? d->cap * 2 : 64, 0};
        for (size_t i = 0; i < d->cap; i++)
            if (d->slots[i][0]) dirset_add(&bigger, d->slots[i][0] - 1, d->slots[i][1]);
        free(d->slots);
        *d = bigger;
    }
    size_t i = dirset_slot(d, dev, ino);
    if (!d->slots[i][0]) d->count++;
    d->slots[i][0] = dev + 1; /* 0 marks a free slot */
    d->slots[i][1] = ino;
}

/* Remembers a new entry for the rollback, unless a directory this upload made holds it. */
static int made_entry(struct upload *u, int parent, const char *rel)
{
    struct stat st;
    if (fstat(parent, &st) == 0 && dirset_has(&u->made, st.st_dev, st.st_ino)) return 0;
    if (record(&u->created, rel) == 0) return 0;
    err_set(&u->err, "FileSystem", E2BIG, "the archive makes more new entries than an upload can take back if it fails (%u MiB of names)",
            MAX_ROLLBACK >> 20);
    return -1;
}

static int made_dir(struct upload *u, int parent, const char *name, const char *rel)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return fs_fail(u, errno, "lstat", rel);
    if (made_entry(u, parent, rel) < 0) return -1;
    dirset_add(&u->made, st.st_dev, st.st_ino);
    return 0;
}

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
            else r = made_dir(u, dir, part, rel);
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
        if (made_dir(u, dir, leaf(rel), rel) < 0) return -1;
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
    if (r == 0) r = made_entry(u, dir, rel);
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
        else r = made_entry(u, dir, u->rel);
        u->mode = e->mode & 0777;
        u->mtime = e->mtime;
        u->has_mtime = e->has_mtime;
        u->file_bytes = 0;
        u->behind = (struct write_behind){0};
        break;
    case TAR_SYMLINK:
        if (!e->link || e->link_len == 0) r = refuse(u, e->name, e->name_len, "symlink without a target");
        else if (memchr(e->link, 0, e->link_len)) r = refuse(u, e->name, e->name_len, "symlink target contains a NUL byte");
        else if ((r = clear_for_replace(u, dir, e->name, e->name_len, u->rel)) == 0 && symlinkat(e->link, dir, leaf(u->rel)) < 0)
            r = fs_fail(u, errno, "symlink", u->rel);
        else if (r == 0)
            r = made_entry(u, dir, u->rel);
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
    write_behind(u->fd, &u->behind, n);
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

const struct tar_events UNPACK_EVENTS = {on_entry, on_data, on_end};

