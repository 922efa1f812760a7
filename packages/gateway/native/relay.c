/*
 * sbx-gateway-relay: the gateway's data plane for bound connections.
 *
 * A client connection bound to one sandbox (`bind=` in its URL, held to it by the daemon) needs
 * nothing of the gateway once it has been routed: every byte goes to one daemon and back. The
 * gateway (Node) hands such a connection's two sockets here, and this process moves their bytes
 * with one read and one write per wake-up, in a single epoll loop, parsing nothing but the
 * daemon's frame headers (to know where a frame ends, so a "host lost" farewell can be put
 * between two frames).
 *
 * The gateway runs it as a child with a Node IPC channel (NODE_CHANNEL_FD): JSON lines, a socket
 * passed with SCM_RIGHTS on its line, acknowledged by NODE_HANDLE_ACK (the protocol Node's own
 * child_process speaks). Lines from the gateway, each a JSON string of space-separated fields
 * whose values are decimal numbers or base64, "-" for none (so no JSON escape can occur):
 *   with a socket: "client ID HEAD"              HEAD: bytes the gateway read from the client but did not pass on
 *   with a socket: "daemon ID HEAD EXIT REASON"  HEAD: bytes read from the daemon, not yet passed on;
 *                                                EXIT, REASON: the farewell (below)
 *   "lose ID EXIT REASON"                        the gateway lost the daemon: farewell and close
 *   "bye"                                        the gateway is shutting down: every client gets close 1001
 *   "drop ID"                                    the gateway could not hand over a connection's other side
 * Lines to the gateway: "closed ID HOW" (HOW: client, daemon, lost, cut, bye, error).
 *
 * The farewell: when the daemon's side ends without a close frame from it (the daemon died or
 * was lost), the client gets the text message EXIT (a sandbox.exit notification) and a close
 * frame with code 4001 and reason REASON ("host lost: ..."), if the daemon's stream stopped at a
 * frame boundary; otherwise the connection is just closed. The SDK turns 4001 into the same
 * errors the gateway's general path gives.
 *
 * Bounds: one shared read buffer; a connection holds memory only for bytes its peer has not yet
 * taken, and while it does, nothing more is read from the other side (backpressure). A
 * connection ending after a farewell is dropped after CLOSE_GRACE_MS if the client does not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define READ_SIZE (64 * 1024)
/*
 * At a frame boundary the daemon's side is read this much at a time: a small message (an answer,
 * a notification) comes whole, and of a large one (a stream's data) only the start; the rest of
 * a payload of SPLICE_MIN bytes or more then moves from socket to socket by splice(2), never
 * copied through this process.
 */
#define HEAD_READ (4 * 1024)
#define SPLICE_MIN (16 * 1024)
#define IPC_MAX (64 * 1024)
#define CLOSE_GRACE_MS 5000
#define HOST_LOST 4001

enum side { CLIENT = 0, DAEMON = 1 };

struct end {
    struct conn *conn;
    enum side side;
    int fd;
    uint32_t events; /* what epoll watches now */
};

/* Bytes read from one side that the other side has not yet taken. */
struct pending {
    unsigned char *buf;
    size_t len, off;
};

struct conn {
    long id;
    struct end ends[2];
    int watched[2];       /* its fd is in epoll */
    struct pending to[2]; /* to[CLIENT]: the daemon's bytes waiting for the client; to[DAEMON]: the reverse */
    struct ws_tracker daemon_frames;
    int pipe[2];          /* a frame's payload spliced from the daemon to the client goes through it (-1: none yet) */
    size_t piped;         /* bytes in it, owed to the client before anything else */
    int splicing;         /* the current frame's payload is being spliced */
    int client_eof;        /* the client sent FIN (passed on to the daemon once its bytes are) */
    int daemon_shut;       /* that FIN was passed on */
    const char *how;       /* set once the daemon's side is gone: what the gateway is told at the end */
    int client_shut;       /* everything owed is written and our side of the client is shut */
    long long deadline_ms; /* once the daemon's side is gone: when the client is dropped regardless */
    char *exit_text, *reason; /* the farewell */
    struct conn *next, *prev, *dead;
};

static int ep, ipc;
/* Connections whose daemon side is gone, waiting for their client to leave (or their deadline). */
static int nclosing;
static struct conn *conns, *graveyard;
static unsigned char rbuf[READ_SIZE];

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void fatal(const char *what)
{
    fprintf(stderr, "sbx-gateway-relay: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- the IPC channel to the gateway */

/* Lines for the gateway it has not taken yet (its channel was full): written when it can take them, in order. */
static struct pending ipc_out;

static void ipc_watch(void)
{
    struct epoll_event ev = { .events = EPOLLIN | (ipc_out.len > 0 ? EPOLLOUT : 0), .data.ptr = NULL };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, ipc, &ev) < 0) fatal("epoll_ctl ipc");
}

/* Writes what waits for the gateway; a gateway that is gone takes its connections with it. */
static void ipc_flush(void)
{
    while (ipc_out.off < ipc_out.len) {
        ssize_t w = write(ipc, ipc_out.buf + ipc_out.off, ipc_out.len - ipc_out.off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ipc_watch();
        if (w <= 0) exit(0);
        ipc_out.off += (size_t)w;
    }
    free(ipc_out.buf);
    ipc_out = (struct pending){ 0 };
    ipc_watch();
}

static int hold(struct pending *p, const unsigned char *data, size_t n);

/* Queues a line for the gateway and writes what it can now: a busy or stopped gateway never stalls the connections. */
static void ipc_send(const char *line)
{
    if (!hold(&ipc_out, (const unsigned char *)line, strlen(line))) fatal("out of memory for the gateway's channel");
    ipc_flush();
}

/* ---- connections */

static void report(long id, const char *how)
{
    char line[96];
    snprintf(line, sizeof line, "\"closed %ld %s\"\n", id, how);
    ipc_send(line);
}

static struct conn *find(long id)
{
    for (struct conn *c = conns; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

static void watch(struct end *e, uint32_t events)
{
    if (e->fd < 0 || e->events == events) return;
    struct epoll_event ev = { .events = events, .data.ptr = e };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev) < 0) fatal("epoll_ctl");
    e->events = events;
}

/* What the client is owed: bytes held for it and bytes in the splice pipe. */
static size_t owed_client(const struct conn *c)
{
    return c->to[CLIENT].len + c->piped;
}

/*
 * What each socket is watched for: writable while it is owed bytes; readable while the other
 * side has taken everything it was sent (backpressure), and the client always once the daemon's
 * side is gone (to see it leave; what it sends then is dropped).
 */
static void rewatch(struct conn *c)
{
    uint32_t client = 0, daemon = 0;
    if (owed_client(c) > 0) client |= EPOLLOUT;
    if (!c->client_eof && (c->how || c->to[DAEMON].len == 0)) client |= EPOLLIN | EPOLLRDHUP;
    if (c->to[DAEMON].len > 0) daemon |= EPOLLOUT;
    if (owed_client(c) == 0) daemon |= EPOLLIN | EPOLLRDHUP;
    watch(&c->ends[CLIENT], client);
    watch(&c->ends[DAEMON], daemon);
}

static void close_end(struct conn *c, int s)
{
    if (c->ends[s].fd >= 0) {
        if (c->watched[s]) epoll_ctl(ep, EPOLL_CTL_DEL, c->ends[s].fd, NULL);
        c->watched[s] = 0;
        close(c->ends[s].fd);
        c->ends[s].fd = -1;
    }
    free(c->to[s].buf);
    c->to[s] = (struct pending){ 0 };
}

/* Ends the connection and tells the gateway how; its memory goes after this batch of events. */
static void drop(struct conn *c, const char *how)
{
    close_end(c, CLIENT);
    close_end(c, DAEMON);
    for (int i = 0; i < 2; i++)
        if (c->pipe[i] >= 0) close(c->pipe[i]);
    c->pipe[0] = c->pipe[1] = -1;
    c->piped = 0;
    if (c->how) nclosing--;
    if (c->prev) c->prev->next = c->next;
    else conns = c->next;
    if (c->next) c->next->prev = c->prev;
    report(c->id, how);
    free(c->exit_text);
    free(c->reason);
    c->exit_text = c->reason = NULL;
    c->id = -1;
    c->dead = graveyard;
    graveyard = c;
}

/* Appends bytes a side has not taken; false if memory ran out. */
static int hold(struct pending *p, const unsigned char *data, size_t n)
{
    if (n == 0) return 1;
    if (p->off > 0) {
        memmove(p->buf, p->buf + p->off, p->len - p->off);
        p->len -= p->off;
        p->off = 0;
    }
    unsigned char *b = realloc(p->buf, p->len + n);
    if (!b) return 0;
    memcpy(b + p->len, data, n);
    p->buf = b;
    p->len += n;
    return 1;
}

/* Writes what side s is owed; 0 when done or the socket is full, -1 if it broke. */
static int flush(struct conn *c, int s)
{
    struct pending *p = &c->to[s];
    /* The client's spliced bytes came first: they go first. */
    while (s == CLIENT && c->piped > 0) {
        ssize_t w = splice(c->pipe[0], NULL, c->ends[CLIENT].fd, NULL, c->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (w <= 0) return -1;
        c->piped -= (size_t)w;
    }
    while (p->off < p->len) {
        ssize_t w = send(c->ends[s].fd, p->buf + p->off, p->len - p->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (w < 0) return -1;
        p->off += (size_t)w;
    }
    free(p->buf);
    *p = (struct pending){ 0 };
    return 0;
}

/* Sends side s these bytes after what it is owed, holding what it does not take now; -1 if it broke. */
static int deliver(struct conn *c, int s, const unsigned char *data, size_t n)
{
    if (c->ends[s].fd < 0) return -1;
    if (!hold(&c->to[s], data, n)) return -1;
    return flush(c, s);
}

/* Once the daemon's side is gone and the client has all it is owed: shut our side, wait for its FIN. */
static void settle(struct conn *c)
{
    if (!c->how || owed_client(c) > 0) return;
    if (c->client_eof) return drop(c, c->how);
    if (!c->client_shut) {
        shutdown(c->ends[CLIENT].fd, SHUT_WR);
        c->client_shut = 1;
    }
}

/*
 * The daemon's side is gone (it closed, broke, or the gateway lost it), or is let go (the gateway
 * is shutting down). After the daemon's own close frame nothing more is owed; otherwise, between
 * two frames the client is told why: the text message `exit_text` if not NULL, then a close frame
 * with `code` and `reason` (and the connection ends as `how`); mid-frame it can only be cut off.
 * What was read before is delivered first.
 */
static void end_daemon_side(struct conn *c, const char *exit_text, unsigned code, const char *reason, const char *how)
{
    if (c->how) return;
    if (!reason) reason = "host lost"; /* never without one once both sides are there; kept safe regardless */
    close_end(c, DAEMON);
    c->deadline_ms = now_ms() + CLOSE_GRACE_MS;
    nclosing++;
    if (c->client_eof) c->how = "client";
    else if (c->daemon_frames.saw_close) c->how = "daemon";
    else if (!ws_at_boundary(&c->daemon_frames)) c->how = "cut";
    else {
        unsigned char frame[16 + 8192];
        size_t n = exit_text ? ws_text_frame(frame, sizeof frame, exit_text) : 0;
        size_t m = ws_close_frame(frame + n, sizeof frame - n, code, reason);
        c->how = how;
        if ((exit_text && n == 0) || m == 0 || deliver(c, CLIENT, frame, n + m) < 0) return drop(c, "error");
    }
    rewatch(c);
    settle(c);
}

/* The daemon is gone without saying goodbye: the farewell (its sandbox.exit, close 4001 "host lost: ..."). */
static void daemon_gone(struct conn *c, const char *exit_text, const char *reason)
{
    end_daemon_side(c, exit_text, HOST_LOST, reason, "lost");
}

/* Moves the next part of a spliced payload from the daemon into the pipe, and on to the client. */
static void splice_payload(struct conn *c)
{
    struct ws_tracker *t = &c->daemon_frames;
    size_t want = t->left < READ_SIZE ? (size_t)t->left : READ_SIZE;
    ssize_t n = splice(c->ends[DAEMON].fd, NULL, c->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) return;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        /*
         * Called only when epoll says the socket is readable and the pipe is empty: a splice that
         * still cannot move anything would be retried on every wake-up. The rest of this payload
         * is copied instead, which always makes progress.
         */
        c->splicing = 0;
        return;
    }
    if (n <= 0) return daemon_gone(c, c->exit_text, c->reason);
    ws_skip(t, (size_t)n);
    c->piped += (size_t)n;
    if (!t->in_payload) c->splicing = 0;
    if (flush(c, CLIENT) < 0) return drop(c, "client");
    rewatch(c);
}

/* After a read: the rest of a large payload is spliced, when the client has taken everything before it. */
static void maybe_splice(struct conn *c)
{
    const struct ws_tracker *t = &c->daemon_frames;
    if (!t->in_payload || t->left < SPLICE_MIN || owed_client(c) > 0) return;
    if (c->pipe[0] < 0 && pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        c->pipe[0] = c->pipe[1] = -1; /* out of descriptors: it is copied instead */
        return;
    }
    c->splicing = 1;
}

/* Reads once from side s (or splices, in a spliced payload) and passes it on. */
static void pump(struct conn *c, int s)
{
    if (s == DAEMON && c->splicing) return splice_payload(c);
    size_t size = s == DAEMON && ws_at_boundary(&c->daemon_frames) ? HEAD_READ : sizeof rbuf;
    ssize_t n = recv(c->ends[s].fd, rbuf, size, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (s == DAEMON) {
        if (n <= 0) return daemon_gone(c, c->exit_text, c->reason);
        /* Not WebSocket framing: nothing trustworthy can be said to the client. */
        if (ws_track(&c->daemon_frames, rbuf, (size_t)n) < 0) return drop(c, "error");
        if (deliver(c, CLIENT, rbuf, (size_t)n) < 0) return drop(c, "client");
        maybe_splice(c);
        return rewatch(c);
    }
    if (n < 0) return drop(c, "client");
    if (n == 0) {
        c->client_eof = 1;
        if (c->how) return drop(c, c->how);
        /* Its FIN goes on once what it sent has. */
        if (c->to[DAEMON].len == 0 && !c->daemon_shut) {
            shutdown(c->ends[DAEMON].fd, SHUT_WR);
            c->daemon_shut = 1;
        }
        return rewatch(c);
    }
    if (c->how) return; /* the daemon is gone: what the client says goes nowhere */
    if (deliver(c, DAEMON, rbuf, (size_t)n) < 0) return daemon_gone(c, c->exit_text, c->reason);
    rewatch(c);
}

static void writable(struct conn *c, int s)
{
    if (flush(c, s) < 0) {
        if (s == DAEMON) return daemon_gone(c, c->exit_text, c->reason);
        return drop(c, "client");
    }
    if (s == DAEMON && c->client_eof && c->to[DAEMON].len == 0 && !c->daemon_shut) {
        shutdown(c->ends[DAEMON].fd, SHUT_WR);
        c->daemon_shut = 1;
    }
    /* A payload begun while the client still owed bytes is spliced from here on. */
    if (s == CLIENT && !c->how && c->ends[DAEMON].fd >= 0) maybe_splice(c);
    rewatch(c);
    settle(c);
}

/* Takes a socket as one side of a connection; it is watched only once both sides are there (add_watch). */
static void add_end(struct conn *c, int s, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) fatal("fcntl");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ends[s] = (struct end){ c, (enum side)s, fd, 0 };
}

/*
 * Puts both sides in epoll. Not before: epoll reports a hang-up even with no interest set, and a
 * client side read before its daemon side exists would have nowhere to pass its bytes.
 */
static void add_watch(struct conn *c)
{
    for (int s = 0; s < 2; s++) {
        struct epoll_event ev = { .events = 0, .data.ptr = &c->ends[s] };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->ends[s].fd, &ev) < 0) fatal("epoll_ctl");
        c->watched[s] = 1;
    }
}

/* ---- what the gateway says */

/* Splits a line's fields in place; returns how many. */
static int fields(char *s, char **out, int max)
{
    int n = 0;
    for (char *t = strtok(s, " "); t && n < max; t = strtok(NULL, " ")) out[n++] = t;
    return n;
}

static void refuse_line(const char *what)
{
    fprintf(stderr, "sbx-gateway-relay: ignored a malformed message from the gateway (%s)\n", what);
}

/* A base64 field decoded into a heap buffer (NUL-terminated, for text); NULL if malformed. */
static unsigned char *decoded(const char *b64, size_t *n)
{
    if (strcmp(b64, "-") == 0) b64 = ""; /* no bytes */
    size_t cap = strlen(b64) / 4 * 3 + 1;
    unsigned char *out = malloc(cap);
    if (out && b64_decode(b64, out, cap - 1, n) == 0) {
        out[*n] = 0;
        return out;
    }
    free(out);
    return NULL;
}

static void on_message(char *text, int fd)
{
    char *f[6];
    int n = fields(text, f, 6);
    long id = n >= 2 ? strtol(f[1], NULL, 10) : -1;
    size_t hn = 0, en = 0, rn = 0;
    if (n == 3 && strcmp(f[0], "client") == 0 && fd >= 0 && id > 0 && !find(id)) {
        struct conn *c = calloc(1, sizeof *c);
        unsigned char *head = decoded(f[2], &hn);
        if (!c || !head || !hold(&c->to[DAEMON], head, hn)) {
            free(head);
            if (c) free(c->to[DAEMON].buf);
            free(c);
            close(fd);
            report(id, "error");
            return refuse_line("client side");
        }
        free(head);
        c->id = id;
        c->ends[DAEMON].fd = -1;
        c->pipe[0] = c->pipe[1] = -1;
        add_end(c, CLIENT, fd);
        c->next = conns;
        if (conns) conns->prev = c;
        conns = c;
        return; /* watched once its daemon side arrives */
    }
    if (n == 5 && strcmp(f[0], "daemon") == 0 && fd >= 0) {
        struct conn *c = find(id);
        if (!c || c->ends[DAEMON].fd >= 0) {
            close(fd);
            if (id > 0 && !c) report(id, "error"); /* the gateway counts it until told */
            return refuse_line("daemon side of an unknown connection");
        }
        add_end(c, DAEMON, fd);
        add_watch(c);
        unsigned char *head = decoded(f[2], &hn);
        c->exit_text = (char *)decoded(f[3], &en);
        c->reason = (char *)decoded(f[4], &rn);
        int ok = head && c->exit_text && c->reason && ws_track(&c->daemon_frames, head, hn) == 0;
        if (ok) ok = deliver(c, CLIENT, head, hn) == 0 && flush(c, DAEMON) == 0;
        free(head);
        if (!ok) return drop(c, "error");
        maybe_splice(c);
        return rewatch(c);
    }
    if (fd >= 0) close(fd);
    if (n == 2 && strcmp(f[0], "drop") == 0) {
        /* The gateway could not hand over one side: the other goes too. */
        struct conn *c = find(id);
        if (c) drop(c, "error");
        return;
    }
    if (n >= 2 && id > 0 && (strcmp(f[0], "client") == 0 || strcmp(f[0], "daemon") == 0)) {
        /* A side that came without its socket (the kernel cut it: out of descriptors) or malformed: the connection cannot be. */
        struct conn *c = find(id);
        if (c && c->ends[DAEMON].fd < 0) drop(c, "error");
        else if (!c) report(id, "error");
        return refuse_line(f[0]);
    }
    if (n == 1 && strcmp(f[0], "bye") == 0) {
        for (struct conn *c = conns, *next; c; c = next) {
            next = c->next;
            if (c->ends[DAEMON].fd >= 0) end_daemon_side(c, NULL, 1001, "gateway shutting down", "bye");
        }
        return;
    }
    if (n == 4 && strcmp(f[0], "lose") == 0) {
        struct conn *c = find(id);
        unsigned char *exit_text = decoded(f[2], &en), *reason = decoded(f[3], &rn);
        if (c && c->ends[DAEMON].fd >= 0 && exit_text && reason) daemon_gone(c, (char *)exit_text, (char *)reason);
        free(exit_text);
        free(reason);
        if (!exit_text || !reason) refuse_line("lose");
        return;
    }
    refuse_line(n > 0 ? f[0] : "empty");
}

/* One JSON line from the channel: a Node internal message or one of ours (a JSON string). */
static void on_line(char *line, int *fd)
{
    static const char handle_prefix[] = "{\"cmd\":\"NODE_HANDLE\"";
    if (strncmp(line, handle_prefix, sizeof handle_prefix - 1) == 0) {
        ipc_send("{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
        char *m = strstr(line, "\"msg\":\"");
        char *end = m ? strchr(m + 7, '"') : NULL;
        int got = *fd;
        *fd = -1;
        if (!end) {
            if (got >= 0) close(got);
            return refuse_line("handle without a message");
        }
        *end = 0;
        return on_message(m + 7, got);
    }
    if (line[0] == '{') return; /* Node's other internal messages (NODE_HANDLE_ACK and the like) */
    size_t n = strlen(line);
    if (n < 2 || line[0] != '"' || line[n - 1] != '"') return refuse_line("not a string");
    line[n - 1] = 0;
    on_message(line + 1, -1);
}

static void read_ipc(void)
{
    static char buf[IPC_MAX];
    static size_t len;
    static int fd = -1;
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = { buf + len, sizeof buf - len - 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
    ssize_t n = recvmsg(ipc, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) exit(0); /* the gateway is gone */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; i++) {
            int got;
            memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
            if (fd < 0) fd = got;
            else close(got); /* Node sends one handle per message */
        }
    }
    len += (size_t)n;
    buf[len] = 0;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
        *nl = 0;
        on_line(start, &fd);
        start = nl + 1;
    }
    len -= (size_t)(start - buf);
    memmove(buf, start, len);
    if (len == sizeof buf - 1) {
        fprintf(stderr, "sbx-gateway-relay: a message from the gateway is longer than %d bytes\n", IPC_MAX);
        exit(1);
    }
}

/* Drops the closing connections past their deadline: a sweep at most once a second, and only while there are some. */
static void expire(void)
{
    static long long next_sweep;
    long long now = now_ms();
    if (nclosing == 0 || now < next_sweep) return;
    next_sweep = now + 1000;
    for (struct conn *c = conns, *next; c; c = next) {
        next = c->next;
        if (c->how && now >= c->deadline_ms) drop(c, c->how);
    }
}

int main(void)
{
    const char *chan = getenv("NODE_CHANNEL_FD");
    if (!chan) {
        fprintf(stderr, "sbx-gateway-relay: run by sbx-gateway only (no NODE_CHANNEL_FD)\n");
        return 2;
    }
    ipc = atoi(chan);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 0;
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fatal("epoll_create1");
    int fl = fcntl(ipc, F_GETFL);
    if (fl < 0 || fcntl(ipc, F_SETFL, fl | O_NONBLOCK) < 0) fatal("fcntl ipc");
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ipc, &ev) < 0) fatal("epoll_ctl ipc");
    struct epoll_event evs[64];
    for (;;) {
        int timeout = nclosing > 0 ? 1000 : -1;
        int n = epoll_wait(ep, evs, 64, timeout);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fatal("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct end *e = evs[i].data.ptr;
            if (!e) {
                if (evs[i].events & EPOLLOUT) ipc_flush();
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_ipc();
                continue;
            }
            struct conn *c = e->conn;
            if (c->id < 0 || e->fd < 0) continue; /* ended earlier in this batch */
            int s = e->side;
            if (evs[i].events & EPOLLOUT) {
                writable(c, s);
                if (c->id < 0 || e->fd < 0) continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pump(c, s);
        }
        expire();
        while (graveyard) {
            struct conn *c = graveyard;
            graveyard = c->dead;
            free(c);
        }
    }
}
