/*
 * Everything the supervisor does before it reads the first call, in this order: keep a
 * handle on its own oom_score_adj, become non-dumpable, close inherited fds, mount the
 * sandbox's own devpts with a pty cap, drop every capability, set no_new_privs and install
 * the seccomp filter. Any failure ends the supervisor (and so the sandbox) with a message.
 */
#ifndef SBX_SETUP_H
#define SBX_SETUP_H

#include <stdbool.h>
#include <sys/types.h>

/* The umask the supervisor started with: new files get 0644 & ~umask, as open(2) would. */
extern mode_t setup_umask;

/* Started with --sudo (a sandbox booted from an image): spawns may ask for uid 0. */
extern bool setup_sudo;

void setup_sandbox(int argc, char **argv);

/* In a child between fork and exec: uid and gid 0 with the root capability set (setup_sudo only). */
int become_root(void);

/* Around fork: children inherit oom_score_adj 1000; the supervisor keeps its own. */
int oom_children_begin(void);
void oom_children_end(void);

#endif
