/*
 * The supervisor's end of the channel on stdin/stdout: a bounded output queue written with
 * writev, and input read into the frame reader and handed to the dispatcher. Sources stop
 * producing while the queue is full, so memory stays bounded whatever the daemon's pace.
 */
#ifndef SBX_CHAN_H
#define SBX_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "json.h"

void chan_init(int in_fd, int out_fd, void (*dispatch)(const struct frame *f));
/* Bytes of stream data the queue takes before producers must wait. */
size_t chan_room(void);
void chan_send(uint8_t op, uint32_t id, const void *payload, size_t len);
void chan_msg(const jw *w);
void chan_end(uint32_t id);
void chan_credit(uint32_t id, uint32_t bytes);
void chan_abort(uint32_t id, const char *reason);
/* Reads and dispatches what the daemon sent; true if there may be more right away. */
bool chan_pump_input(void);
/* Input is waiting and the queue has room to read it. */
bool chan_input_ready(void);
/* The input buffer grew past its idle size (frames were flowing); release it once input is idle. */
bool chan_spare(void);
void chan_release_spare(void);
/* Writes what is queued; exits when the daemon has gone. */
void chan_flush(void);

#endif
