/*
 * The channel between the daemon and the supervisor (packages/daemon/src/channel/framing.ts):
 *   u32 length of what follows | u8 op | u32 stream id | payload
 * The reader below is pure (no I/O) so it can be fuzzed on its own.
 */
#ifndef SBX_FRAME_H
#define SBX_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { OP_DATA = 0, OP_END = 1, OP_CREDIT = 2, OP_ABORT = 3, OP_MSG = 4 };

/* Mirrors of @sbx/protocol/frames and channel/framing.ts. */
#define MAX_CHANNEL_FRAME (16u << 20)
#define STREAM_WINDOW (8u << 20)
#define CREDIT_BATCH (128u * 1024)
/* What an output stream may send before the daemon's first CREDIT (channel/framing.ts). */
#define CHANNEL_INITIAL_WINDOW (256u * 1024)
#define MAX_CHUNK (256u * 1024)
#define FRAME_HEADER 9
#define MAX_ABORT_REASON 1024

struct frame {
    uint8_t op;
    uint32_t id;
    uint8_t *payload;
    size_t len;
};

struct frame_reader {
    uint8_t *buf;
    size_t cap, start, end;
    size_t max_frame;
    char error[96];
};

void fr_init(struct frame_reader *r, size_t max_frame);
void fr_free(struct frame_reader *r);
/*
 * Room to read into (never NULL unless out of memory). It may move buffered bytes, so every
 * frame returned earlier must be finished with first.
 */
uint8_t *fr_space(struct frame_reader *r, size_t *avail);
void fr_commit(struct frame_reader *r, size_t n);
/* The buffer is larger than the reader keeps when idle; fr_release shrinks it if nothing is held. */
bool fr_spare(const struct frame_reader *r);
void fr_release(struct frame_reader *r);
/* Copies `n` bytes in (tests and fuzzing); -1 when out of memory. */
int fr_push(struct frame_reader *r, const void *data, size_t n);
/* 1: *f is the next frame (valid until fr_space); 0: more bytes needed; -1: r->error says why. */
int fr_next(struct frame_reader *r, struct frame *f);

void frame_header(uint8_t h[FRAME_HEADER], uint8_t op, uint32_t id, size_t payload_len);
uint32_t be32(const uint8_t *p);
void put_be32(uint8_t *p, uint32_t v);

#endif
