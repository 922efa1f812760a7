/* File system helpers shared by the calls. */
#ifndef SBX_FSUTIL_H
#define SBX_FSUTIL_H

#include <stddef.h>

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"
#include "json.h"

/*
 * rm -r of `name` below the directory fd `parent`, never following a symlink. `path`
 * (PATH_BUF bytes, holding `len` bytes) names things in errors and is scratch below that.
 */
int rm_tree(int parent, const char *name, char *path, size_t len, int depth, struct err *e);

/* A reply whose value is one string. */
void reply_string(int64_t id, const char *s);

/* params.<key>: a byte length (absent: 0). */
int param_length(const jv *p, const char *key, off_t *out, struct err *e);
/* params.atime and params.mtime, in seconds since the epoch, as utimensat(2) takes them. */
int param_times(const jv *p, struct timespec ts[2], struct err *e);

/* A FileInfo object (protocol fs.ts) from statx, and a reply that is one. */
struct statx;
void jw_file_info(jw *w, const struct statx *st);
void reply_file_info(int64_t id, const struct statx *st);

#endif
