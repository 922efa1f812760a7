/*
 * The little of the wire the relay reads and writes: base64 (the gateway's messages carry bytes
 * that way), the headers of a server's WebSocket frames (to know where one ends), and the two
 * frames it sends itself (a text message and a close).
 */
#ifndef SBX_RELAY_WIRE_H
#define SBX_RELAY_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Decodes standard base64 (padding required when the length is not a multiple of 4); -1 if malformed or longer than cap. */
int b64_decode(const char *in, unsigned char *out, size_t cap, size_t *outlen);

/* Follows a byte stream of WebSocket frames (RFC 6455 §5.2) across reads of any size. */
struct ws_tracker {
    unsigned char head[14]; /* the header being read */
    size_t have;            /* its bytes so far */
    uint64_t left;          /* payload bytes of the current frame still to come */
    int in_payload;
    int saw_close;          /* a whole close frame has passed */
    int opcode;             /* the current frame's */
};

/* Feeds bytes; -1 if they are not WebSocket framing (a reserved opcode, a 64-bit length with its top bit set, a control frame over 125 bytes). */
int ws_track(struct ws_tracker *t, const unsigned char *data, size_t n);

/* Counts `n` payload bytes of the current frame that passed without being fed (at most what is left of it). */
void ws_skip(struct ws_tracker *t, size_t n);

/* True between two frames. */
int ws_at_boundary(const struct ws_tracker *t);

/* An unmasked text frame / close frame (code, reason cut to 123 bytes at a UTF-8 boundary) into out; its length, or 0 if it does not fit. */
size_t ws_text_frame(unsigned char *out, size_t cap, const char *text);
size_t ws_close_frame(unsigned char *out, size_t cap, unsigned code, const char *reason);

#endif
