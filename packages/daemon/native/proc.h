/* User processes: started by process.spawn, signalled by process.kill, reaped on SIGCHLD. */
#ifndef SBX_PROC_H
#define SBX_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Reaps every exited child (orphans included) and reports those the daemon started. */
void procs_reap(void);
/* Whether `pid` is a child the supervisor started and has not reaped yet. */
bool procs_running(pid_t pid);

#endif
