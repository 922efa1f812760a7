#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "frame.h"
#include "idmap.h"
#include "util.h"

struct pending {
    struct pending *next;
    size_t len, off;
    uint8_t data[];
};

static struct idmap outs, ins;

/*
 * A process's output pipe is enlarged from 64 to 256 KiB (MAX_CHUNK): its bulk output then
 * crosses the channel, the daemon and the client's connection in frames of up to 256 KiB instead
 * of 64, a quarter of the frames to pass on at every hop. Pipe pages count against the sandbox
 * user's share (fs.pipe-user-pages-soft, 64 MiB by default; past it the kernel gives that user's
 * new pipes 8 KiB), so at most BIG_PIPES are enlarged at once: 4 MiB of it.
 */
#define BIG_PIPE (256 * 1024)
#define BIG_PIPES 16
static int big_pipes;
static bool room_wanted;
/* One chunk's worth: sources read here and the channel copies what they read. */
static uint8_t scratch[MAX_CHUNK];

bool stream_waiting_for_room(void)
{
    bool w = room_wanted;
    room_wanted = false;
    return w;
}

static void out_destroy(struct task *t)
{
    struct outstream *s = (struct outstream *)t;
    loop_unwatch(&s->w);
    free(s);
}

/* The daemon never reuses a stream id; if it ever did, two streams would share frames. */
static void claim(struct idmap *m, uint32_t id, void *s)
{
    if (idmap_get(&outs, id) || idmap_get(&ins, id)) die("the daemon reused stream id %u", id);
    idmap_put(m, id, s);
}

static void out_finish(struct outstream *s, enum out_end how)
{
    if (s->task.dead) return;
    idmap_del(&outs, s->id);
    /* Before the owner closes the fd: a reused fd number must not lose its own registration. */
    loop_unwatch(&s->w);
    task_end(&s->task);
    s->src->closed(s, how);
}

static bool out_pump(struct task *t)
{
    struct outstream *s = (struct outstream *)t;
    size_t room = chan_room();
    if (s->credit <= 0 || (s->pollable && !s->w.readable)) return false;
    if (room < STREAM_MIN_ROOM) {
        room_wanted = true;
        return false;
    }
    size_t cap = MIN(MIN((size_t)s->credit, room), (size_t)MAX_CHUNK);
    ssize_t n = s->src->read(s, scratch, cap);
    if (n > 0) {
        chan_send(OP_DATA, s->id, scratch, (size_t)n);
        s->credit -= n;
        return true;
    }
    if (n == IO_AGAIN) {
        s->w.readable = false;
        return false;
    }
    if (n == 0) {
        chan_end(s->id);
        out_finish(s, OUT_EOF);
    } else {
        chan_abort(s->id, s->reason[0] ? s->reason : "read failed");
        out_finish(s, OUT_FAILED);
    }
    return false;
}

struct outstream *out_open(uint32_t id, const struct out_source *src, void *owner, int fd)
{
    struct outstream *s = xcalloc(1, sizeof *s);
    s->id = id;
    s->credit = CHANNEL_INITIAL_WINDOW;
    s->src = src;
    s->owner = owner;
    s->fd = fd;
    s->w.fd = -1;
    /*
     * Not readable until epoll says so (it reports data already there at once): a FIFO with
     * no writer yet reads as end-of-file, but must wait for one, as open(2) would.
     */
    if (fd >= 0 && loop_watch(&s->w, fd, true, false) == 0) s->pollable = true;
    struct stat st;
    if (src == &FD_SOURCE && big_pipes < BIG_PIPES && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_SETPIPE_SZ, BIG_PIPE) >= BIG_PIPE) {
        s->big_pipe = true;
        big_pipes++;
    }
    claim(&outs, id, s);
    task_start(&s->task, out_pump, out_destroy);
    return s;
}

void out_fail(struct outstream *s, const char *reason)
{
    if (s->task.dead) return;
    chan_abort(s->id, reason);
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    out_finish(s, OUT_FAILED);
}

static void in_destroy(struct task *t)
{
    struct instream *s = (struct instream *)t;
    loop_unwatch(&s->w);
    while (s->head) {
        struct pending *p = s->head;
        s->head = p->next;
        free(p);
    }
    free(s);
}

static void in_over(struct instream *s)
{
    s->over = true;
    idmap_del(&ins, s->id);
    loop_unwatch(&s->w);
    task_end(&s->task);
}

static void in_consumed(struct instream *s, size_t n)
{
    s->uncredited += n;
    if (s->uncredited >= CREDIT_BATCH) {
        chan_credit(s->id, (uint32_t)s->uncredited);
        s->uncredited = 0;
    }
}

/* The sink's own failure: tell the daemon, then the owner. */
static void in_sink_failed(struct instream *s)
{
    if (s->over) return;
    const char *reason = s->reason[0] ? s->reason : "write failed";
    chan_abort(s->id, reason);
    in_over(s);
    s->sink->failed(s, reason, false);
}

void in_fail(struct instream *s, const char *reason)
{
    if (s->over) return;
    chan_abort(s->id, reason);
    in_over(s);
}

/* Hands pending bytes to the sink; true if it took everything. */
static bool in_drain(struct instream *s)
{
    while (s->head && !s->over) {
        if (s->pollable && !s->w.writable) return false;
        struct pending *p = s->head;
        ssize_t n = s->sink->write(s, p->data + p->off, p->len - p->off);
        if (n == IO_AGAIN) {
            s->w.writable = false;
            return false;
        }
        if (n < 0) {
            in_sink_failed(s);
            return false;
        }
        p->off += (size_t)n;
        s->pending_bytes -= (size_t)n;
        in_consumed(s, (size_t)n);
        if (p->off == p->len) {
            s->head = p->next;
            if (!s->head) s->tail = NULL;
            free(p);
        }
    }
    return !s->over;
}

static void in_maybe_end(struct instream *s)
{
    if (s->over || !s->end_seen || s->head) return;
    in_over(s);
    s->sink->ended(s);
}

static bool in_pump(struct task *t)
{
    struct instream *s = (struct instream *)t;
    if (s->head && in_drain(s)) in_maybe_end(s);
    return false;
}

struct instream *in_open(uint32_t id, const struct in_sink *sink, void *owner, int fd)
{
    struct instream *s = xcalloc(1, sizeof *s);
    s->id = id;
    s->sink = sink;
    s->owner = owner;
    s->fd = fd;
    s->w.fd = -1;
    if (fd >= 0 && loop_watch(&s->w, fd, false, true) == 0) {
        s->pollable = true;
        s->w.writable = true;
    }
    claim(&ins, id, s);
    task_start(&s->task, in_pump, in_destroy);
    return s;
}

static void in_data(struct instream *s, const uint8_t *p, size_t n)
{
    if (s->end_seen) return;
    if (s->pending_bytes + n > STREAM_WINDOW) {
        /* The daemon's relay enforces the window; a breach means something is badly wrong. */
        snprintf(s->reason, sizeof s->reason, "flow control violated on stream %u", s->id);
        in_sink_failed(s);
        return;
    }
    if (!s->head && (!s->pollable || s->w.writable)) {
        while (n > 0) {
            ssize_t k = s->sink->write(s, p, n);
            if (k == IO_AGAIN) {
                s->w.writable = false;
                break;
            }
            if (k < 0) {
                in_sink_failed(s);
                return;
            }
            in_consumed(s, (size_t)k);
            p += k;
            n -= (size_t)k;
            if (k == 0) break;
        }
    }
    if (n == 0 || s->over) return;
    struct pending *c = xmalloc(sizeof *c + n);
    c->next = NULL;
    c->len = n;
    c->off = 0;
    memcpy(c->data, p, n);
    if (s->tail) s->tail->next = c;
    else s->head = c;
    s->tail = c;
    s->pending_bytes += n;
}

void stream_frame(uint8_t op, uint32_t id, const uint8_t *p, size_t n)
{
    struct instream *in = idmap_get(&ins, id);
    struct outstream *out = idmap_get(&outs, id);
    char reason[REASON_MAX];
    switch (op) {
    case OP_DATA:
        if (in) in_data(in, p, n);
        break;
    case OP_END:
        if (in) {
            in->end_seen = true;
            in_maybe_end(in);
        }
        break;
    case OP_CREDIT:
        if (out && out->credit < (int64_t)1 << 40) out->credit += be32(p);
        break;
    case OP_ABORT: {
        size_t k = MIN(n, sizeof reason - 1);
        memcpy(reason, p, k);
        reason[k] = 0;
        if (!reason[0]) snprintf(reason, sizeof reason, "aborted by the client");
        if (in && !in->over) {
            in_over(in);
            in->sink->failed(in, reason, true);
        }
        if (out) out_finish(out, OUT_ABORTED);
        break;
    }
    }
}

static ssize_t fd_read(struct outstream *s, uint8_t *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(s->fd, buf, cap);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return IO_AGAIN;
        snprintf(s->reason, sizeof s->reason, "%s: %s, read", errno_name(errno), errno_desc(errno));
        return -1;
    }
}

static void fd_closed(struct outstream *s, enum out_end how)
{
    (void)how;
    if (s->big_pipe) big_pipes--;
    close(s->fd);
}

const struct out_source FD_SOURCE = {fd_read, fd_closed};

static ssize_t fd_write(struct instream *s, const uint8_t *p, size_t n)
{
    for (;;) {
        ssize_t k = write(s->fd, p, n);
        if (k >= 0) return k;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return IO_AGAIN;
        snprintf(s->reason, sizeof s->reason, "%s: %s, write", errno_name(errno), errno_desc(errno));
        return -1;
    }
}

static void fd_ended(struct instream *s) { close(s->fd); }

static void fd_failed(struct instream *s, const char *reason, bool by_daemon)
{
    (void)reason;
    (void)by_daemon;
    close(s->fd);
}

const struct in_sink FD_SINK = {fd_write, fd_ended, fd_failed};

/* A pty master reports EIO once every slave end has closed: that is its end of file. */
static ssize_t pty_read(struct outstream *s, uint8_t *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(s->fd, buf, cap);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return IO_AGAIN;
        if (errno == EIO) return 0;
        snprintf(s->reason, sizeof s->reason, "%s: %s, read", errno_name(errno), errno_desc(errno));
        return -1;
    }
}

const struct out_source PTY_SOURCE = {pty_read, fd_closed};

/* One direction of a socket whose other direction is still in use: END half-closes it. */
static void sock_ended(struct instream *s)
{
    shutdown(s->fd, SHUT_WR);
    close(s->fd);
}

const struct in_sink SOCK_SINK = {fd_write, sock_ended, fd_failed};
