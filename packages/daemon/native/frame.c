#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the reader keeps when idle; only a frame larger than this grows it. */
#define BASE_CAP (64u * 1024)
/*
 * Kept between frames while they flow (one DATA frame and a read after it), so a stream of
 * MAX_CHUNK frames does not grow and shrink the buffer for each; fr_release gives it back once
 * the channel is idle. Anything bigger (a large call) is given back as soon as it is handled.
 */
#define FLOW_CAP (FRAME_HEADER + MAX_CHUNK + BASE_CAP)

uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void frame_header(uint8_t h[FRAME_HEADER], uint8_t op, uint32_t id, size_t payload_len)
{
    put_be32(h, (uint32_t)(5 + payload_len));
    h[4] = op;
    put_be32(h + 5, id);
}

void fr_init(struct frame_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
}

void fr_free(struct frame_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->end = 0;
}

static int resize(struct frame_reader *r, size_t cap)
{
    uint8_t *p = realloc(r->buf, cap);
    if (!p) return -1;
    r->buf = p;
    r->cap = cap;
    return 0;
}

uint8_t *fr_space(struct frame_reader *r, size_t *avail)
{
    size_t held = r->end - r->start;
    if (held == 0) {
        r->start = r->end = 0;
        if (r->cap > FLOW_CAP) resize(r, BASE_CAP); /* give a big frame's memory back */
    }
    size_t want = BASE_CAP;
    if (held >= 4) {
        size_t len = be32(r->buf + r->start);
        if (len <= r->max_frame && 4 + len > want) want = 4 + len;
    }
    if (r->start > 0 && (r->end == r->cap || r->start >= r->cap / 2 || r->cap - r->start < want)) {
        memmove(r->buf, r->buf + r->start, held);
        r->start = 0;
        r->end = held;
    }
    if (r->cap < want && resize(r, want) < 0) return NULL;
    /* 0 only when a whole unconsumed frame fills the buffer: the caller parses it first. */
    *avail = r->cap - r->end;
    return r->buf + r->end;
}

void fr_commit(struct frame_reader *r, size_t n) { r->end += n; }

bool fr_spare(const struct frame_reader *r) { return r->cap > BASE_CAP; }

void fr_release(struct frame_reader *r)
{
    if (r->end != r->start || r->cap <= BASE_CAP) return;
    r->start = r->end = 0;
    resize(r, BASE_CAP);
}

int fr_push(struct frame_reader *r, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        struct frame f;
        size_t avail;
        uint8_t *dst = fr_space(r, &avail);
        if (!dst) return -1;
        if (avail == 0) {
            /* Test helper only: drop a complete frame nobody consumed to make room. */
            if (fr_next(r, &f) != 1) return -1;
            continue;
        }
        size_t k = n < avail ? n : avail;
        memcpy(dst, p, k);
        fr_commit(r, k);
        p += k;
        n -= k;
    }
    return 0;
}

int fr_next(struct frame_reader *r, struct frame *f)
{
    size_t held = r->end - r->start;
    if (held < 4) return 0;
    const uint8_t *h = r->buf + r->start;
    uint32_t len = be32(h);
    if (len < 5 || len > r->max_frame) {
        snprintf(r->error, sizeof r->error, "channel frame of %u bytes is outside 5..%zu", len, r->max_frame);
        return -1;
    }
    if (held < 5) return 0;
    uint8_t op = h[4];
    if (op > OP_MSG) {
        snprintf(r->error, sizeof r->error, "unknown channel op %u", op);
        return -1;
    }
    if (held < 4 + (size_t)len) return 0;
    f->op = op;
    f->id = be32(h + 5);
    f->payload = r->buf + r->start + FRAME_HEADER;
    f->len = len - 5;
    r->start += 4 + (size_t)len;
    const char *bad = NULL;
    if (op == OP_MSG && f->id != 0) bad = "MSG frame on a stream";
    else if (op != OP_MSG && f->id == 0) bad = "stream frame for stream 0";
    else if (op == OP_DATA && f->len > MAX_CHUNK) bad = "DATA frame larger than MAX_CHUNK";
    else if (op == OP_CREDIT && f->len != 4) bad = "CREDIT frame without a 4-byte count";
    else if (op == OP_END && f->len != 0) bad = "END frame with a payload";
    else if (op == OP_ABORT && f->len > 4 * MAX_ABORT_REASON) bad = "ABORT reason too long";
    if (bad) {
        snprintf(r->error, sizeof r->error, "%s", bad);
        return -1;
    }
    return 1;
}
