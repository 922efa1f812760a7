/*
 * The sandbox's network namespace has only loopback. This bridges 127.0.0.1:3128 inside to
 * the daemon's egress proxy on the unix socket bound in at /.sbx/run/proxy.sock, byte for
 * byte; every decision is the proxy's. Each direction holds at most one buffer and reads
 * only once the other side has taken the last, and a shutdown travels across (half-close).
 */
#include "bridge.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop.h"
#include "util.h"

#define PROXY_PORT 3128
#define PROXY_SOCKET "/.sbx/run/proxy.sock"
#define HALF_BUF (32u * 1024)
/* Past this many open connections new ones are closed at once: 2 fds and <= 64 KiB each. */
#define MAX_CONNS 512
#define ACCEPTS_PER_TURN 16

struct half {
    uint8_t *buf;
    size_t len, off;
    bool eof, shut;
};

struct conn {
    struct task task;
    struct watch inside, proxy;
    struct half up, down; /* up: inside -> proxy; down: proxy -> inside */
};

static struct {
    struct task task;
    struct watch w;
    int conns;
} listener;

static void conn_destroy(struct task *t)
{
    struct conn *c = (struct conn *)t;
    free(c->up.buf);
    free(c->down.buf);
    free(c);
    listener.conns--;
}

static void conn_close(struct conn *c)
{
    loop_unwatch(&c->inside);
    loop_unwatch(&c->proxy);
    close(c->inside.fd);
    close(c->proxy.fd);
    task_end(&c->task);
}

/* Moves bytes from one socket to the other; -1 when the connection is broken. */
static int move(struct watch *from, struct watch *to, struct half *h, bool *progress)
{
    if (!h->eof && h->len == 0 && from->readable) {
        if (!h->buf) h->buf = xmalloc(HALF_BUF);
        ssize_t n = recv(from->fd, h->buf, HALF_BUF, 0);
        if (n > 0) {
            h->len = (size_t)n;
            h->off = 0;
            *progress = true;
        } else if (n == 0) {
            h->eof = true;
        } else if (errno == EAGAIN) {
            from->readable = false;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    if (h->off < h->len && to->writable) {
        ssize_t n = send(to->fd, h->buf + h->off, h->len - h->off, MSG_NOSIGNAL);
        if (n >= 0) {
            h->off += (size_t)n;
            *progress = true;
        } else if (errno == EAGAIN) {
            to->writable = false;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    if (h->len && h->off == h->len) {
        /* Idle connections hold no buffer. */
        free(h->buf);
        h->buf = NULL;
        h->len = h->off = 0;
    }
    if (h->eof && h->len == 0 && !h->shut) {
        shutdown(to->fd, SHUT_WR);
        h->shut = true;
    }
    return 0;
}

static bool conn_pump(struct task *t)
{
    struct conn *c = (struct conn *)t;
    bool progress = false;
    if (move(&c->inside, &c->proxy, &c->up, &progress) < 0 || move(&c->proxy, &c->inside, &c->down, &progress) < 0) {
        conn_close(c);
        return false;
    }
    if (c->up.shut && c->down.shut) {
        conn_close(c);
        return false;
    }
    return progress;
}

static void bridge_one(int inside)
{
    int one = 1;
    setsockopt(inside, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int proxy = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = PROXY_SOCKET};
    if (proxy < 0 || connect(proxy, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (proxy >= 0) close(proxy);
        close(inside);
        return;
    }
    struct conn *c = xcalloc(1, sizeof *c);
    if (loop_watch(&c->inside, inside, true, true) < 0 || loop_watch(&c->proxy, proxy, true, true) < 0) die("cannot watch a bridged connection: %m");
    c->inside.readable = c->inside.writable = c->proxy.readable = c->proxy.writable = true;
    listener.conns++;
    task_start(&c->task, conn_pump, conn_destroy);
}

static bool accept_pump(struct task *t)
{
    (void)t;
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        if (!listener.w.readable) return false;
        int fd = accept4(listener.w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            /* Out of fds (EMFILE) and the like: wait for the next connection rather than spin. */
            if (errno != EAGAIN) warnx_("egress bridge: accept: %s", strerror(errno));
            listener.w.readable = false;
            return false;
        }
        if (listener.conns >= MAX_CONNS) close(fd);
        else bridge_one(fd);
    }
    return true;
}

void bridge_start(void)
{
    struct stat st;
    if (stat(PROXY_SOCKET, &st) < 0) return; /* no way out configured: nothing to bridge */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(PROXY_PORT), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(fd, 511) < 0 || loop_watch(&listener.w, fd, true, false) < 0) {
        /* Not a confinement: without the bridge the sandbox simply has no network. */
        warnx_("egress bridge: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    listener.w.readable = true;
    task_start(&listener.task, accept_pump, NULL);
}
