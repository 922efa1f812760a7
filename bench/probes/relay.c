/*
 * The cheapest hop this machine allows, for bench/hop-floor.ts: a single-threaded epoll TCP relay
 * that moves bytes between each client and its own connection to the target with splice(2)
 * through a pipe (no copy into user space) and understands nothing. Sockets are non-blocking
 * (a TCP splice read honours only the socket's own flag). Prints its port, then relays
 * until killed. Usage: relay HOST PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct half {
    int from, to, pipe[2];
    int dead;
    struct half *other;
};

static int ep;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void watch(struct half *h)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = h };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, h->from, &ev) < 0) die("epoll_ctl");
}

/* Closes both halves; their memory goes after the current batch of events (one may name the other). */
static void close_pair(struct half *h, struct half **dead, int *ndead)
{
    struct half *o = h->other;
    epoll_ctl(ep, EPOLL_CTL_DEL, h->from, NULL);
    epoll_ctl(ep, EPOLL_CTL_DEL, o->from, NULL);
    close(h->from);
    close(o->from);
    close(h->pipe[0]), close(h->pipe[1]), close(o->pipe[0]), close(o->pipe[1]);
    h->dead = o->dead = 1;
    dead[(*ndead)++] = h < o ? h : o;
}

/* Moves what is readable from h->from to h->to; returns -1 when the pair is done. */
static int pump(struct half *h)
{
    for (;;) {
        ssize_t n = splice(h->from, NULL, h->pipe[1], NULL, 1 << 16, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n == 0) return -1;
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        for (size_t left = (size_t)n; left > 0;) {
            /* A slow target is waited for here: a floor, not a fair scheduler. */
            ssize_t m = splice(h->pipe[0], NULL, h->to, NULL, left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m < 0 && errno == EAGAIN) {
                struct pollfd p = { .fd = h->to, .events = POLLOUT };
                poll(&p, 1, -1);
                continue;
            }
            if (m <= 0) return -1;
            left -= (size_t)m;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: relay HOST PORT\n");
        return 2;
    }
    struct sockaddr_in target = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) die("inet_pton");
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (ls < 0 || bind(ls, (struct sockaddr *)&any, sizeof any) < 0 || listen(ls, 64) < 0) die("listen");
    socklen_t len = sizeof any;
    getsockname(ls, (struct sockaddr *)&any, &len);
    printf("%d\n", ntohs(any.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    for (;;) {
        struct epoll_event evs[64];
        struct half *dead[64];
        int ndead = 0;
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                int c = accept(ls, NULL, NULL);
                if (c < 0) continue;
                int u = socket(AF_INET, SOCK_STREAM, 0);
                if (u < 0 || connect(u, (struct sockaddr *)&target, sizeof target) < 0) {
                    close(c);
                    if (u >= 0) close(u);
                    continue;
                }
                int one = 1;
                fcntl(c, F_SETFL, O_NONBLOCK);
                fcntl(u, F_SETFL, O_NONBLOCK);
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct half *h = calloc(2, sizeof *h);
                h[0] = (struct half){ .from = c, .to = u, .other = &h[1] };
                h[1] = (struct half){ .from = u, .to = c, .other = &h[0] };
                if (pipe2(h[0].pipe, 0) < 0 || pipe2(h[1].pipe, 0) < 0) die("pipe2");
                watch(&h[0]);
                watch(&h[1]);
                continue;
            }
            struct half *h = evs[i].data.ptr;
            if (!h->dead && pump(h) < 0) close_pair(h, dead, &ndead);
        }
        for (int k = 0; k < ndead; k++) free(dead[k]);
    }
}
