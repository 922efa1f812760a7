/*
 * net.connect: a TCP connection to a port on the sandbox's own loopback, relayed on two
 * streams (input: bytes to the server; output: bytes from it), so the daemon can reach a
 * server inside (exposeHttp, sandbox.fetch) while the sandbox keeps no inbound network. The
 * connect never blocks the loop: a pending one is a task waiting for the socket to be writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call.h"
#include "chan.h"
#include "handlers.h"
#include "loop.h"
#include "stream.h"
#include "util.h"

struct dial {
    struct task task;
    struct watch w;
    int64_t call;
    uint32_t input, output;
    int port;
    bool v6; /* trying ::1 after 127.0.0.1 refused */
};

/* Starts a non-blocking connect: 0 connected, 1 in progress, -1 failed (errno). */
static int dial_start(struct dial *d)
{
    int fd = socket(d->v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    /* One SYN retry: a full backlog fails in seconds, not the kernel's two minutes. */
    int one = 1, syns = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syns, sizeof syns);
    int r;
    if (d->v6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)d->port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        r = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (r == 0 || errno == EINPROGRESS) {
        if (loop_watch(&d->w, fd, false, true) < 0) die("cannot watch a connecting socket: %m");
        return r == 0 ? 0 : 1;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static void dial_fail(struct dial *d, int errnum)
{
    struct err e;
    err_set(&e, "StreamFailed", errnum, "nothing accepts connections on port %d inside the sandbox (%s)", d->port, errno_name(errnum));
    chan_abort(d->input, e.msg);
    chan_abort(d->output, e.msg);
    reply_err(d->call, &e);
    task_end(&d->task);
}

static void dial_done(struct dial *d)
{
    int fd = d->w.fd;
    loop_unwatch(&d->w);
    int in = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (in < 0) die("cannot duplicate a socket: %m");
    in_open(d->input, &SOCK_SINK, NULL, in);
    out_open(d->output, &FD_SOURCE, NULL, fd);
    reply_null(d->call);
    task_end(&d->task);
}

/* Refused on 127.0.0.1: the server may listen on ::1 only (as "localhost" can mean). */
static void dial_next(struct dial *d, int errnum)
{
    if (errnum == ECONNREFUSED && !d->v6) {
        d->v6 = true;
        int r = dial_start(d);
        if (r == 0) return dial_done(d);
        if (r == 1) return;
        /* ::1 unusable or refusing too: the answer is 127.0.0.1's. */
    }
    dial_fail(d, errnum);
}

static bool dial_pump(struct task *t)
{
    struct dial *d = (struct dial *)t;
    if (!d->w.writable) return false;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(d->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == 0) {
        dial_done(d);
        return false;
    }
    loop_unwatch(&d->w);
    close(d->w.fd);
    dial_next(d, err);
    return false;
}

static void dial_destroy(struct task *t) { free(t); }

void h_net_connect(int64_t id, const jv *p)
{
    struct err e;
    bool present;
    int64_t port = 0;
    uint32_t input = 0, output = 0;
    if (param_stream(p, "input", &input, &e) < 0 || param_stream(p, "output", &output, &e) < 0) goto fail;
    if (param_int(p, "port", 1, 65535, &present, &port, &e) < 0) goto fail;
    if (!present || !input || !output) {
        err_set(&e, "InvalidParams", 0, "params: port, input and output are required");
        goto fail;
    }
    struct dial *d = xcalloc(1, sizeof *d);
    d->call = id;
    d->input = input;
    d->output = output;
    d->port = (int)port;
    d->w.fd = -1;
    task_start(&d->task, dial_pump, dial_destroy);
    int r = dial_start(d);
    if (r == 0) dial_done(d);
    else if (r < 0) dial_next(d, errno);
    return;
fail:
    if (input) chan_abort(input, e.msg);
    if (output) chan_abort(output, e.msg);
    reply_err(id, &e);
}
