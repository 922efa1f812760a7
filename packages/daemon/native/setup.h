/*
 * Everything the supervisor does before it reads the first call, in this order: keep a
 * handle on its own oom_score_adj, become non-dumpable, close inherited fds, mount the
 * sandbox's own devpts with a pty cap, drop every capability, set no_new_privs and install
 * the seccomp filter. Any failure ends the supervisor (and so the sandbox) with a message.
 */
#ifndef SBX_SETUP_H
#define SBX_SETUP_H

#include <sys/types.h>

/* The umask the supervisor started with: new files get 0644 & ~umask, as open(2) would. */
extern mode_t setup_umask;

void setup_sandbox(int argc, char **argv);

/* Around fork: children inherit oom_score_adj 1000; the supervisor keeps its own. */
int oom_children_begin(void);
void oom_children_end(void);

#endif
