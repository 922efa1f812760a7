/*
 * sbx-supervisor: the first process inside every sandbox, pid 1 of its pid namespace. It
 * hardens itself (setup.c), then performs the daemon's spawns and file operations over
 * its stdin/stdout (the channel), so every process shares the sandbox's namespaces and the
 * kernel confines every path. As pid 1 it receives only the signals it handles: SIGCHLD,
 * blocked and read from a signalfd. It exits when the daemon closes the channel.
 */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bridge.h"
#include "call.h"
#include "chan.h"
#include "loop.h"
#include "proc.h"
#include "setup.h"
#include "stream.h"
#include "util.h"

static struct watch sig_watch;

static void dispatch(const struct frame *f)
{
    if (f->op == OP_MSG) call_dispatch((char *)f->payload, f->len);
    else stream_frame(f->op, f->id, f->payload, f->len);
}

static int watch_children(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    /*
     * Blocked, not handled: a blocked signal is queued even for pid 1, but it is only ever
     * read here, and reaping uses waitpid, never the sender's siginfo, so a SIGCHLD sent from
     * inside the sandbox reports nothing that did not happen.
     */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return -1;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0 || loop_watch(&sig_watch, fd, true, false) < 0) return -1;
    sig_watch.readable = true;
    /* Writes to a closed pipe or socket report EPIPE instead; children get SIG_DFL back. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void drain_signals(void)
{
    struct signalfd_siginfo info[8];
    while (read(sig_watch.fd, info, sizeof info) > 0) {
    }
    if (errno == EAGAIN) sig_watch.readable = false;
    procs_reap();
}

static void send_ready(void)
{
    jw w;
    jw_init(&w, 256);
    jw_obj(&w);
    jw_key(&w, "t");
    jw_cstr(&w, "ready");
    jw_key(&w, "pid");
    jw_int(&w, getpid());
    jw_obj_end(&w);
    chan_msg(&w);
    jw_free(&w);
}

int main(int argc, char **argv)
{
    setup_sandbox(argc, argv);
    if (loop_init() < 0 || watch_children() < 0) die("cannot set up the event loop: %m");
    chan_init(0, 1, dispatch);
    bridge_start();
    send_ready();
    for (;;) {
        bool busy = chan_pump_input();
        if (sig_watch.readable) drain_signals();
        busy |= tasks_pump();
        chan_flush();
        tasks_sweep();
        /* Producers that waited for room in the queue, or input paused by it, can go on now. */
        if (stream_waiting_for_room() && chan_room() >= STREAM_MIN_ROOM) busy = true;
        if (chan_input_ready()) busy = true;
        /* A buffer grown by a stream's frames is given back after a second without input. */
        int events = loop_wait(busy ? 0 : chan_spare() ? 1000 : -1);
        if (!busy && events == 0) chan_release_spare();
    }
}
