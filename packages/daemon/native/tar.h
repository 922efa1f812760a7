/*
 * ustar + pax archives: a streaming reader (fed arbitrary chunks, reports entries) and a
 * header writer. Both are pure; upload.c and download.c do the file system side. The
 * reader accepts what tar-stream (the client's tar library) accepts, with the same words
 * for the same faults, so uploads fail the same way whichever side unpacks.
 */
#ifndef SBX_TAR_H
#define SBX_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum tar_type { TAR_FILE, TAR_LINK, TAR_SYMLINK, TAR_CHAR, TAR_BLOCK, TAR_DIR, TAR_FIFO, TAR_CONTIG, TAR_OTHER };

/* Extended headers (pax, GNU long names) bigger than this are refused. */
#define TAR_MAX_LONG_HEADER (1u << 20)

struct tar_entry {
    const char *name; /* may contain NUL (pax): use name_len */
    size_t name_len;
    const char *link; /* NULL when the header has none */
    size_t link_len;
    enum tar_type type;
    char typeflag;
    uint32_t mode;
    uint64_t size;
    int64_t mtime;
    bool has_mtime;
};

struct tar_events {
    /* A new entry; its data (if any) follows through `data`, then `end`. Nonzero stops. */
    int (*entry)(void *ctx, const struct tar_entry *e);
    int (*data)(void *ctx, const uint8_t *p, size_t n);
    int (*end)(void *ctx);
};

struct pax_fields {
    bool has_path, has_link, has_size;
    buf_t path, link;
    uint64_t size;
};

struct tar_reader {
    int state;
    uint8_t block[512];
    size_t have;
    uint64_t remaining;
    size_t pad;
    char long_kind;
    buf_t long_data;
    buf_t gnu_path, gnu_link;
    bool has_gnu_path, has_gnu_link;
    struct pax_fields pax, global;
    bool has_pax, has_global;
    buf_t name, link;
    struct tar_entry entry;
    char error[160];
};

void tar_reader_init(struct tar_reader *r);
void tar_reader_free(struct tar_reader *r);
/* 0, or -1: r->error says why (empty when a callback stopped it). */
int tar_feed(struct tar_reader *r, const uint8_t *p, size_t n, const struct tar_events *ev, void *ctx);
/* At the end of input: 0 if the archive ended between entries, else -1 "Unexpected end of data". */
int tar_finish(struct tar_reader *r);
const char *tar_type_name(const struct tar_entry *e);

/* Appends the header block(s) of one entry: a pax header first when ustar cannot hold it. */
int tar_write_header(buf_t *out, const char *name, size_t name_len, enum tar_type type, uint32_t mode, uint64_t size, int64_t mtime,
                     const char *link, size_t link_len);

#endif
