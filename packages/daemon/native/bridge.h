/* The egress bridge: 127.0.0.1:3128 inside to the daemon's proxy socket. */
#ifndef SBX_BRIDGE_H
#define SBX_BRIDGE_H

/* Listens if the proxy socket is there; returns once listening (or when there is nothing to do). */
void bridge_start(void);

#endif
