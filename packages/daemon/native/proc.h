/* User processes: started by process.spawn, signalled by process.kill, reaped on SIGCHLD. */
#ifndef SBX_PROC_H
#define SBX_PROC_H

/* Reaps every exited child (orphans included) and reports those the daemon started. */
void procs_reap(void);

#endif
