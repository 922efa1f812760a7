#include "chan.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "loop.h"
#include "util.h"

/* Producers wait above this; input is not read above PAUSE (only large replies get there). */
#define OUTQ_HIGH (1u << 20)
#define OUTQ_PAUSE (4u << 20)

struct chunk {
    struct chunk *next;
    size_t len, off;
    uint8_t data[];
};

static struct {
    struct watch in, out;
    struct frame_reader reader;
    void (*dispatch)(const struct frame *f);
    struct chunk *head, **tail;
    size_t queued;
} ch;

void chan_init(int in_fd, int out_fd, void (*dispatch)(const struct frame *f))
{
    fr_init(&ch.reader, MAX_CHANNEL_FRAME);
    ch.dispatch = dispatch;
    ch.tail = &ch.head;
    if (fd_set_nonblock(in_fd) < 0 || fd_set_nonblock(out_fd) < 0) die("cannot make the channel non-blocking: %m");
    if (loop_watch(&ch.in, in_fd, true, false) < 0 || loop_watch(&ch.out, out_fd, false, true) < 0) die("cannot watch the channel: %m");
    /* Start optimistic: the first read or write finds out. */
    ch.in.readable = ch.out.writable = true;
}

size_t chan_room(void) { return ch.queued >= OUTQ_HIGH ? 0 : OUTQ_HIGH - ch.queued; }

void chan_send(uint8_t op, uint32_t id, const void *payload, size_t len)
{
    struct chunk *c = xmalloc(sizeof *c + FRAME_HEADER + len);
    c->next = NULL;
    c->len = FRAME_HEADER + len;
    c->off = 0;
    frame_header(c->data, op, id, len);
    if (len) memcpy(c->data + FRAME_HEADER, payload, len);
    *ch.tail = c;
    ch.tail = &c->next;
    ch.queued += c->len;
}

void chan_msg(const jw *w) { chan_send(OP_MSG, 0, w->out.p, w->out.len); }

void chan_end(uint32_t id) { chan_send(OP_END, id, NULL, 0); }

void chan_credit(uint32_t id, uint32_t bytes)
{
    uint8_t p[4];
    put_be32(p, bytes);
    chan_send(OP_CREDIT, id, p, 4);
}

void chan_abort(uint32_t id, const char *reason)
{
    size_t n = utf8_prefix(reason, strlen(reason), MAX_ABORT_REASON);
    chan_send(OP_ABORT, id, reason, n);
}

bool chan_spare(void) { return fr_spare(&ch.reader); }

void chan_release_spare(void) { fr_release(&ch.reader); }

bool chan_input_ready(void) { return ch.in.readable && ch.queued < OUTQ_PAUSE; }

void chan_flush(void)
{
    while (ch.head && ch.out.writable) {
        struct iovec iov[64];
        int n = 0;
        for (struct chunk *c = ch.head; c && n < 64; c = c->next) {
            iov[n].iov_base = c->data + c->off;
            iov[n].iov_len = c->len - c->off;
            n++;
        }
        ssize_t w = writev(ch.out.fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                ch.out.writable = false;
                return;
            }
            /* The daemon went away: nothing inside may outlive it. */
            _exit(0);
        }
        ch.queued -= (size_t)w;
        while (w > 0) {
            struct chunk *c = ch.head;
            size_t left = c->len - c->off;
            if ((size_t)w < left) {
                c->off += (size_t)w;
                break;
            }
            w -= (ssize_t)left;
            ch.head = c->next;
            if (!ch.head) ch.tail = &ch.head;
            free(c);
        }
    }
}

bool chan_pump_input(void)
{
    for (int reads = 0; reads < 4; reads++) {
        if (ch.queued >= OUTQ_PAUSE || !ch.in.readable) return false;
        size_t avail;
        uint8_t *dst = fr_space(&ch.reader, &avail);
        if (!dst) die("out of memory reading the channel");
        if (avail > 0) {
            ssize_t r = read(ch.in.fd, dst, avail);
            if (r == 0) _exit(0); /* the daemon closed the channel */
            if (r < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN) die("reading the channel: %m");
                ch.in.readable = false;
            } else {
                fr_commit(&ch.reader, (size_t)r);
            }
        }
        struct frame f;
        int got;
        while ((got = fr_next(&ch.reader, &f)) == 1) ch.dispatch(&f);
        if (got < 0) die("the daemon broke the channel protocol: %s", ch.reader.error);
        if (!ch.in.readable) return false;
    }
    return true;
}
