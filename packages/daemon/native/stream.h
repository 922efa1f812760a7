/*
 * Byte streams multiplexed on the channel, with the protocol's credit-based flow control.
 * An out stream sends what its source produces, never more than the daemon's credit; an in
 * stream hands DATA to its sink and grants credit only for bytes the sink has taken, so at
 * most one window (1 MiB) per stream ever waits in the supervisor.
 */
#ifndef SBX_STREAM_H
#define SBX_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"

#define IO_AGAIN (-2)
/* Sources read only when the channel's queue has this much room: no crumbs in a nearly full queue. */
#define STREAM_MIN_ROOM (16u * 1024)
#define REASON_MAX 512

enum out_end { OUT_EOF, OUT_FAILED, OUT_ABORTED };

struct outstream;
struct out_source {
    /* Up to cap bytes into buf: >0 bytes, 0 end, -1 failure (reason set), IO_AGAIN nothing yet. */
    ssize_t (*read)(struct outstream *s, uint8_t *buf, size_t cap);
    /* The stream is over (END or ABORT already sent, or the daemon aborted it). */
    void (*closed)(struct outstream *s, enum out_end how);
};

struct outstream {
    struct task task;
    uint32_t id;
    int64_t credit;
    struct watch w; /* the source's fd when epoll can watch it */
    bool pollable;
    /* fd is a pipe enlarged to BIG_PIPE (stream.c), one of the few at a time. */
    bool big_pipe;
    const struct out_source *src;
    void *owner;
    int fd;
    char reason[REASON_MAX];
};

struct instream;
struct in_sink {
    /* Takes up to n bytes: how many, IO_AGAIN for none yet, -1 failure (reason set). */
    ssize_t (*write)(struct instream *s, const uint8_t *p, size_t n);
    /* END arrived and the sink has taken everything. */
    void (*ended)(struct instream *s);
    /* The stream failed: by_daemon (ABORT received, reason from the client) or the sink's own failure. */
    void (*failed)(struct instream *s, const char *reason, bool by_daemon);
};

struct pending;
struct instream {
    struct task task;
    uint32_t id;
    struct watch w;
    bool pollable, end_seen, over;
    struct pending *head, *tail;
    size_t pending_bytes, uncredited;
    const struct in_sink *sink;
    void *owner;
    int fd;
    char reason[REASON_MAX];
};

/* fd: the source's descriptor (watched if epoll can), or -1 for generated data. */
struct outstream *out_open(uint32_t id, const struct out_source *src, void *owner, int fd);
struct instream *in_open(uint32_t id, const struct in_sink *sink, void *owner, int fd);
/* Ends a stream from our side: ABORT with a reason, no callbacks. */
void out_fail(struct outstream *s, const char *reason);
void in_fail(struct instream *s, const char *reason);

/* Some out stream could send but the channel's queue was full (reset each time it is asked). */
bool stream_waiting_for_room(void);

/* Frames from the daemon for stream ids. */
void stream_frame(uint8_t op, uint32_t id, const uint8_t *p, size_t n);

/* Ready-made sources and sinks on plain fds (pipes, files); they close the fd at the end. */
extern const struct out_source FD_SOURCE;
extern const struct in_sink FD_SINK;
/* A pty master's output (EIO is its end), and a socket's sending half (END is shutdown(SHUT_WR)). */
extern const struct out_source PTY_SOURCE;
extern const struct in_sink SOCK_SINK;

#endif
