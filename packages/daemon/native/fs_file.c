/*
 * Open files (Deno's FsFile): fs.open puts a descriptor in a table and answers with its
 * handle; the fs.file* calls act on it. The table is bounded (MAX_HANDLES per sandbox) and
 * handles are never reused, so a stale or guessed number finds nothing. Which connection may
 * use a handle is the daemon's business (it closes a connection's handles when it goes);
 * here a handle is only ever a table entry, and a descriptor a write in progress still uses
 * is closed when that write ends, never under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "chan.h"
#include "fsutil.h"
#include "handlers.h"
#include "idmap.h"
#include "path.h"
#include "stream.h"
#include "util.h"

#define MAX_HANDLES 256
#define MAX_READ (1u << 20)

struct fhandle {
    int fd;
    /* Writes in progress; a closed handle's descriptor goes once they end. */
    int busy;
    bool closed;
    char *path;
};

static struct idmap handles;
static size_t open_count;
static uint32_t next_handle = 1;

static void release(struct fhandle *h)
{
    if (h->closed && h->busy == 0) {
        close(h->fd);
        free(h->path);
        free(h);
    }
}

/* The handle named by params.handle (its number in *num), or NULL with EBADF, as for a descriptor never opened. */
static struct fhandle *handle_num(const jv *p, uint32_t *num, struct err *e)
{
    bool present;
    int64_t n = 0;
    if (param_int(p, "handle", 1, 0x7fffffff, &present, &n, e) < 0) return NULL;
    struct fhandle *h = present ? idmap_get(&handles, (uint32_t)n) : NULL;
    if (!h) err_set(e, "FileSystem", EBADF, "EBADF: bad file descriptor, no open file with handle %lld", (long long)n);
    *num = (uint32_t)n;
    return h;
}

static struct fhandle *handle_of(const jv *p, struct err *e)
{
    uint32_t n;
    return handle_num(p, &n, e);
}

void h_open(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    bool rd, wr, append, trunc, create, create_new, has_mode;
    int64_t mode = 0666;
    if (param_path(p, "path", true, path, &e) < 0 || param_bool(p, "read", true, &rd, &e) < 0 || param_bool(p, "write", false, &wr, &e) < 0 ||
        param_bool(p, "append", false, &append, &e) < 0 || param_bool(p, "truncate", false, &trunc, &e) < 0 ||
        param_bool(p, "create", false, &create, &e) < 0 || param_bool(p, "createNew", false, &create_new, &e) < 0 ||
        param_int(p, "mode", 0, 07777, &has_mode, &mode, &e) < 0)
        goto fail;
    bool writes = wr || append;
    if ((create || create_new || trunc) && !writes) {
        err_set(&e, "FileSystem", EINVAL, "EINVAL: create, createNew and truncate need write or append access, open '%s'", path);
        goto fail;
    }
    if (!rd && !writes) {
        err_set(&e, "FileSystem", EINVAL, "EINVAL: a file must be opened for reading, writing or appending, open '%s'", path);
        goto fail;
    }
    if (open_count >= MAX_HANDLES) {
        err_set(&e, "ResourceLimit", EMFILE, "EMFILE: this sandbox already has %d open files (fs.open): close some before opening more", MAX_HANDLES);
        goto fail;
    }
    int flags = (rd && writes ? O_RDWR : writes ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (append) flags |= O_APPEND;
    if (create_new) flags |= O_CREAT | O_EXCL;
    else {
        if (create) flags |= O_CREAT;
        if (trunc) flags |= O_TRUNC;
    }
    /* Non-blocking, so that a FIFO neither hangs the open nor a later read: those read 0 bytes. */
    int fd = open(path, flags, (mode_t)mode);
    if (fd < 0) {
        err_fs(&e, errno, "open", path);
        goto fail;
    }
    struct fhandle *h = xcalloc(1, sizeof *h);
    h->fd = fd;
    h->path = xstrndup(path, strlen(path));
    /* Numbers are not reused until 2^31 opens later, and then never one still open. */
    uint32_t n;
    do {
        n = next_handle++;
        if (next_handle > 0x7fffffff) next_handle = 1;
    } while (idmap_get(&handles, n));
    idmap_put(&handles, n, h);
    open_count++;
    jw w;
    reply_begin(&w, id);
    jw_obj(&w);
    jw_key(&w, "handle");
    jw_int(&w, n);
    jw_obj_end(&w);
    reply_finish(&w, id);
    return;
fail:
    reply_err(id, &e);
}

void h_file_close(int64_t id, const jv *p)
{
    struct err e;
    uint32_t n;
    struct fhandle *h = handle_num(p, &n, &e);
    if (!h) goto fail;
    idmap_del(&handles, n);
    open_count--;
    h->closed = true;
    release(h);
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

/* Bytes read for one fs.fileRead, sent on its stream and freed when it is over. */
struct chunk {
    size_t len, off;
    uint8_t data[];
};

static ssize_t chunk_read(struct outstream *s, uint8_t *buf, size_t cap)
{
    struct chunk *c = s->owner;
    size_t n = MIN(cap, c->len - c->off);
    memcpy(buf, c->data + c->off, n);
    c->off += n;
    return (ssize_t)n;
}

static void chunk_closed(struct outstream *s, enum out_end how)
{
    (void)how;
    free(s->owner);
}

static const struct out_source CHUNK_SOURCE = {chunk_read, chunk_closed};

void h_file_read(int64_t id, const jv *p)
{
    struct err e;
    uint32_t sid = 0;
    bool present;
    int64_t length = 0;
    struct fhandle *h = NULL;
    if (param_stream(p, "stream", &sid, &e) < 0 || !(h = handle_of(p, &e)) || param_int(p, "length", 1, MAX_READ, &present, &length, &e) < 0) goto fail;
    if (!sid || !present) {
        err_set(&e, "InvalidParams", 0, "params.stream and params.length: required");
        goto fail;
    }
    struct chunk *c = xmalloc(sizeof *c + (size_t)length);
    ssize_t n;
    do n = read(h->fd, c->data, (size_t)length);
    while (n < 0 && errno == EINTR);
    bool eof = n == 0;
    if (n < 0 && errno == EAGAIN) n = 0; /* a FIFO or device with nothing yet: 0 bytes, not the end */
    if (n < 0) {
        err_fs(&e, errno, "read", h->path);
        free(c);
        goto fail;
    }
    c->len = (size_t)n;
    c->off = 0;
    jw w;
    reply_begin(&w, id);
    jw_obj(&w);
    jw_key(&w, "bytes");
    jw_int(&w, n);
    jw_key(&w, "eof");
    jw_bool(&w, eof);
    jw_obj_end(&w);
    reply_finish(&w, id);
    out_open(sid, &CHUNK_SOURCE, c, -1);
    return;
fail:
    if (sid) chan_abort(sid, e.msg);
    reply_err(id, &e);
}

/* One fs.fileWrite: the bytes of its stream written at the handle's position as they come. */
struct fwrite_job {
    int64_t id;
    struct fhandle *h;
    uint64_t written;
    struct err err;
};

static void fwrite_done(struct fwrite_job *j)
{
    j->h->busy--;
    release(j->h);
    free(j);
}

static ssize_t fwrite_sink(struct instream *s, const uint8_t *data, size_t n)
{
    struct fwrite_job *j = s->owner;
    for (;;) {
        ssize_t k = write(j->h->fd, data, n);
        if (k >= 0) {
            j->written += (uint64_t)k;
            return k;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return IO_AGAIN;
        err_fs(&j->err, errno, "write", j->h->path);
        str_copy(s->reason, sizeof s->reason, j->err.msg);
        return -1;
    }
}

static void fwrite_ended(struct instream *s)
{
    struct fwrite_job *j = s->owner;
    jw w;
    reply_begin(&w, j->id);
    jw_obj(&w);
    jw_key(&w, "bytesWritten");
    jw_int(&w, (int64_t)j->written);
    jw_obj_end(&w);
    reply_finish(&w, j->id);
    fwrite_done(j);
}

static void fwrite_failed(struct instream *s, const char *reason, bool by_daemon)
{
    struct fwrite_job *j = s->owner;
    if (by_daemon) err_set(&j->err, "StreamFailed", 0, "the write to %s was aborted: %s", j->h->path, reason);
    reply_err(j->id, &j->err);
    fwrite_done(j);
}

static const struct in_sink FWRITE_SINK = {fwrite_sink, fwrite_ended, fwrite_failed};

void h_file_write(int64_t id, const jv *p)
{
    struct err e;
    uint32_t sid = 0;
    struct fhandle *h = NULL;
    if (param_stream(p, "stream", &sid, &e) < 0 || !(h = handle_of(p, &e))) goto fail;
    if (!sid) {
        err_set(&e, "InvalidParams", 0, "params.stream: required");
        goto fail;
    }
    struct fwrite_job *j = xcalloc(1, sizeof *j);
    j->id = id;
    j->h = h;
    h->busy++;
    /* Watched when epoll can (a FIFO that is full), so a write that must wait resumes by itself. */
    in_open(sid, &FWRITE_SINK, j, h->fd);
    return;
fail:
    if (sid) chan_abort(sid, e.msg);
    reply_err(id, &e);
}

void h_file_seek(int64_t id, const jv *p)
{
    struct err e;
    bool present;
    int64_t offset = 0, whence = 0;
    struct fhandle *h = handle_of(p, &e);
    if (!h || param_int(p, "offset", -INT64_MAX, INT64_MAX, &present, &offset, &e) < 0 || param_int(p, "whence", 0, 2, &present, &whence, &e) < 0) goto fail;
    static const int WHENCE[3] = {SEEK_SET, SEEK_CUR, SEEK_END};
    off_t pos = lseek(h->fd, (off_t)offset, WHENCE[whence]);
    if (pos < 0) {
        err_fs(&e, errno, "seek", h->path);
        goto fail;
    }
    jw w;
    reply_begin(&w, id);
    jw_obj(&w);
    jw_key(&w, "position");
    jw_int(&w, pos);
    jw_obj_end(&w);
    reply_finish(&w, id);
    return;
fail:
    reply_err(id, &e);
}

void h_file_stat(int64_t id, const jv *p)
{
    struct err e;
    struct statx st;
    struct fhandle *h = handle_of(p, &e);
    if (!h) goto fail;
    if (statx(h->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &st) < 0) {
        err_fs(&e, errno, "fstat", h->path);
        goto fail;
    }
    reply_file_info(id, &st);
    return;
fail:
    reply_err(id, &e);
}

void h_file_truncate(int64_t id, const jv *p)
{
    struct err e;
    off_t len;
    struct fhandle *h = handle_of(p, &e);
    if (!h || param_length(p, "len", &len, &e) < 0) goto fail;
    if (ftruncate(h->fd, len) < 0) {
        err_fs(&e, errno, "ftruncate", h->path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_file_sync(int64_t id, const jv *p)
{
    struct err e;
    bool data_only;
    struct fhandle *h = handle_of(p, &e);
    if (!h || param_bool(p, "dataOnly", false, &data_only, &e) < 0) goto fail;
    if ((data_only ? fdatasync(h->fd) : fsync(h->fd)) < 0) {
        err_fs(&e, errno, data_only ? "fdatasync" : "fsync", h->path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_file_utime(int64_t id, const jv *p)
{
    struct err e;
    struct timespec ts[2];
    struct fhandle *h = handle_of(p, &e);
    if (!h || param_times(p, ts, &e) < 0) goto fail;
    if (futimens(h->fd, ts) < 0) {
        err_fs(&e, errno, "futime", h->path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

/* Never waits: the supervisor serves every call of the sandbox, so a held lock answers EAGAIN. */
static void lock_common(int64_t id, const jv *p, bool unlock)
{
    struct err e;
    bool exclusive = false;
    struct fhandle *h = handle_of(p, &e);
    if (!h || (!unlock && param_bool(p, "exclusive", false, &exclusive, &e) < 0)) goto fail;
    if (flock(h->fd, unlock ? LOCK_UN : (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
        err_fs(&e, errno, "flock", h->path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_file_lock(int64_t id, const jv *p) { lock_common(id, p, false); }
void h_file_unlock(int64_t id, const jv *p) { lock_common(id, p, true); }
