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

/*
 * Write-behind for a file written front to back (fs.writeFile, and each file of fs.upload): call
 * after every write of `n` bytes to `fd`. Every WRITE_BEHIND_CHUNK bytes the chunk just written
 * is handed to the disk (sync_file_range WRITE, no wait), so the sync that acknowledges the
 * write finds most of it written already; the chunk two before it is waited for (written by
 * then unless the disk is slower than the stream, which is then held back to the disk's pace)
 * and leaves the page cache (POSIX_FADV_DONTNEED), so a large write does not fill the
 * sandbox's memory limit with its pages, evicting what its programs had cached and making every
 * later write reclaim first. A file up to three chunks stays cached whole, a larger one its
 * last two or three. Offsets come from the file position, so an append drops only its own
 * chunks. Best effort throughout: a file system that cannot, or a failure (a FIFO), leaves all
 * to the final sync.
 */
#define WRITE_BEHIND_CHUNK (8u << 20)
struct write_behind {
    uint64_t pending;     /* bytes written since the last chunk was handed over */
    off_t at[2], len[2];  /* the two chunks handed to the disk last, the older first */
};
void write_behind(int fd, struct write_behind *w, size_t n);

/* A FileInfo object (protocol fs.ts) from statx, and a reply that is one. */
struct statx;
void jw_file_info(jw *w, const struct statx *st);
void reply_file_info(int64_t id, const struct statx *st);

#endif
