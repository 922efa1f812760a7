/*
 * Calls from the daemon ({t:"call",id,m,p}) and the replies to them. Handlers take the
 * params already parsed, reply at once or hand the id to a job that replies later.
 */
#ifndef SBX_CALL_H
#define SBX_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "json.h"

/* The JSON in a MSG frame's payload (parsed in place). */
void call_dispatch(char *payload, size_t len);

int param_str(const jv *p, const char *key, bool required, const char **out, struct err *e);
/* A protocol path resolved against HOME_DIR into out (PATH_BUF bytes); absent: out[0] = 0. */
int param_path(const jv *p, const char *key, bool required, char *out, struct err *e);
int param_bool(const jv *p, const char *key, bool dflt, bool *out, struct err *e);
int param_int(const jv *p, const char *key, int64_t lo, int64_t hi, bool *present, int64_t *out, struct err *e);
/* A required number (fractions allowed) within [lo, hi]. */
int param_double(const jv *p, const char *key, double lo, double hi, double *out, struct err *e);
/* A stream id; absent or null is 0. */
int param_stream(const jv *p, const char *key, uint32_t *out, struct err *e);

void reply_err(int64_t id, const struct err *e);
void reply_null(int64_t id);
/* A reply whose value the caller writes between the two. */
void reply_begin(jw *w, int64_t id);
void reply_finish(jw *w, int64_t id);

#endif
