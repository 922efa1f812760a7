#include "loop.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util.h"

static int epfd = -1;
static struct task head = {&head, &head, NULL, NULL, false};
static struct task graveyard = {&graveyard, &graveyard, NULL, NULL, false};

int loop_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    return epfd < 0 ? -1 : 0;
}

int loop_watch(struct watch *w, int fd, bool in, bool out)
{
    struct epoll_event ev = {.events = EPOLLET | EPOLLRDHUP | (in ? EPOLLIN : 0u) | (out ? EPOLLOUT : 0u), .data.ptr = w};
    w->fd = fd;
    w->readable = w->writable = w->hup = false;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        w->added = false;
        return -1;
    }
    w->added = true;
    return 0;
}

void loop_unwatch(struct watch *w)
{
    if (w->added) epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->added = false;
}

int loop_wait(int timeout_ms)
{
    struct epoll_event evs[64];
    int n = epoll_wait(epfd, evs, ARRAY_LEN(evs), timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return 0;
        die("epoll_wait: %m");
    }
    for (int i = 0; i < n; i++) {
        struct watch *w = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        /* Errors and hang-ups surface through the next read or write, which then fails or ends. */
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) w->readable = true;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) w->writable = true;
        if (e & (EPOLLHUP | EPOLLERR)) w->hup = true;
    }
    return n;
}

static void unlink_task(struct task *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
}

static void link_task(struct task *list, struct task *t)
{
    t->prev = list->prev;
    t->next = list;
    list->prev->next = t;
    list->prev = t;
}

void task_start(struct task *t, bool (*pump)(struct task *), void (*destroy)(struct task *))
{
    t->pump = pump;
    t->destroy = destroy;
    t->dead = false;
    link_task(&head, t);
}

void task_end(struct task *t)
{
    if (t->dead) return;
    t->dead = true;
    unlink_task(t);
    link_task(&graveyard, t);
}

bool tasks_pump(void)
{
    bool busy = false;
    /* A pump may end tasks (moving them to the graveyard) but never frees them, so `next` stays valid. */
    struct task *t = head.next;
    while (t != &head) {
        struct task *next = t->next;
        if (!t->dead && t->pump && t->pump(t)) busy = true;
        if (next->dead) next = t->dead ? head.next : t->next;
        t = next;
    }
    return busy;
}

void tasks_sweep(void)
{
    while (graveyard.next != &graveyard) {
        struct task *t = graveyard.next;
        unlink_task(t);
        if (t->destroy) t->destroy(t);
    }
}
