/*
 * The event loop: one epoll set, edge-triggered, with readiness remembered per fd until a
 * read or write says EAGAIN; and a list of tasks (streams, jobs, bridge connections) that
 * are pumped every turn. Tasks are destroyed only between turns, so a pump may end any task.
 */
#ifndef SBX_LOOP_H
#define SBX_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct watch {
    int fd;
    bool added, readable, writable, hup;
};

struct task {
    struct task *prev, *next;
    bool (*pump)(struct task *t); /* true: it could make more progress right away */
    void (*destroy)(struct task *t);
    bool dead;
};

int loop_init(void);
/* Watches fd for input and/or output. -1 with errno EPERM for files epoll cannot watch. */
int loop_watch(struct watch *w, int fd, bool in, bool out);
void loop_unwatch(struct watch *w);
/* Waits for events (timeout in ms, -1 forever) and records readiness on the watches; how many came. */
int loop_wait(int timeout_ms);

void task_start(struct task *t, bool (*pump)(struct task *), void (*destroy)(struct task *));
/* Marks t for destruction after this turn; it is never pumped again. */
void task_end(struct task *t);
bool tasks_pump(void);
void tasks_sweep(void);

#endif
