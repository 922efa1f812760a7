/* File system helpers shared by the calls. */
#ifndef SBX_FSUTIL_H
#define SBX_FSUTIL_H

#include <stddef.h>

#include <stdint.h>

#include "err.h"

/*
 * rm -r of `name` below the directory fd `parent`, never following a symlink. `path`
 * (PATH_BUF bytes, holding `len` bytes) names things in errors and is scratch below that.
 */
int rm_tree(int parent, const char *name, char *path, size_t len, int depth, struct err *e);

/* A reply whose value is one string. */
void reply_string(int64_t id, const char *s);

#endif
