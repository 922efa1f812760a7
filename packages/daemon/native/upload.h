/* What fs.upload keeps while it unpacks: shared by upload.c (the call) and unpack.c (the entries). */
#ifndef SBX_UPLOAD_H
#define SBX_UPLOAD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "fsutil.h"
#include "path.h"
#include "tar.h"
#include "util.h"

#define MAX_ENTRIES 1000000
/* Names kept to undo a failed upload; only entries outside directories it made are kept. */
#define MAX_ROLLBACK (64u << 20)

/* Directories this upload made, by device and inode. */
struct dirset {
    uint64_t (*slots)[2];
    size_t cap, count;
};

struct upload {
    int64_t id;
    char dest[PATH_BUF], made_dest[PATH_BUF];
    int destfd, fd;
    struct tar_reader tar;
    buf_t created;  /* relative paths, NUL-terminated, in creation order */
    struct dirset made;
    buf_t dirtimes; /* (int64 mtime, relative path NUL) records */
    buf_t dirtime_at; /* offsets of those records */
    uint64_t entries, bytes, file_bytes;
    struct write_behind behind; /* of the file being written */
    uint32_t mode;
    int64_t mtime;
    bool has_mtime;
    char rel[PATH_MAX];
    struct err err;
};

/* The tar reader's callbacks that turn entries into files. */
extern const struct tar_events UNPACK_EVENTS;

#endif
