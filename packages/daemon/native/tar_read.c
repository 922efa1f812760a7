#include "tar.h"

#include <stdio.h>
#include <string.h>

enum { ST_HEADER, ST_LONG, ST_DATA, ST_PAD };

void tar_reader_init(struct tar_reader *r)
{
    memset(r, 0, sizeof *r);
    r->long_data.limit = TAR_MAX_LONG_HEADER;
}

static void pax_free(struct pax_fields *p)
{
    buf_free(&p->path);
    buf_free(&p->link);
}

void tar_reader_free(struct tar_reader *r)
{
    buf_free(&r->long_data);
    buf_free(&r->gnu_path);
    buf_free(&r->gnu_link);
    pax_free(&r->pax);
    pax_free(&r->global);
    buf_free(&r->name);
    buf_free(&r->link);
}

static int fail(struct tar_reader *r, const char *msg)
{
    snprintf(r->error, sizeof r->error, "%s", msg);
    return -1;
}

static size_t padding(uint64_t size) { return (size & 511) ? 512 - (size & 511) : 0; }

static size_t field_len(const uint8_t *p, size_t max)
{
    const uint8_t *nul = memchr(p, 0, max);
    return nul ? (size_t)(nul - p) : max;
}

/* tar-stream's decodeOct: base-256 when the top bit is set, else lenient octal. -1: unreadable. */
static int decode_num(const uint8_t *p, size_t n, uint64_t *out, bool *negative)
{
    *negative = false;
    if (p[0] & 0x80) {
        if (p[0] != 0x80 && p[0] != 0xFF) return -1;
        if (p[0] == 0xFF) {
            *negative = true;
            *out = 0;
            return 0;
        }
        uint64_t v = 0;
        for (size_t i = 1; i < n; i++) {
            if (v >> 56) return -1;
            v = v << 8 | p[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < n && p[i] == ' ') i++;
    size_t end = i;
    while (end < n && p[end] != ' ') end++;
    while (i < end && p[i] == 0) i++;
    if (i == end) {
        *out = 0;
        return 0;
    }
    if (p[i] < '0' || p[i] > '7') return -1;
    uint64_t v = 0;
    for (; i < end && p[i] >= '0' && p[i] <= '7'; i++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

static enum tar_type type_of(int flag)
{
    switch (flag) {
    case 0: return TAR_FILE;
    case 1: return TAR_LINK;
    case 2: return TAR_SYMLINK;
    case 3: return TAR_CHAR;
    case 4: return TAR_BLOCK;
    case 5: return TAR_DIR;
    case 6: return TAR_FIFO;
    case 7: return TAR_CONTIG;
    default: return TAR_OTHER;
    }
}

const char *tar_type_name(const struct tar_entry *e)
{
    static const char *names[] = {"file", "link", "symlink", "character-device", "block-device", "directory", "fifo", "contiguous-file"};
    return e->type < TAR_OTHER ? names[e->type] : "entry of an unknown type";
}

/* pax records "LEN key=value\n" (tar-stream's decodePax, minus reading past the buffer). */
static int decode_pax(struct tar_reader *r, const uint8_t *p, size_t n, struct pax_fields *out)
{
    while (n > 0) {
        size_t i = 0;
        uint64_t len = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && len < (1u << 24)) len = len * 10 + (uint64_t)(p[i++] - '0');
        if (len == 0 || i >= n || p[i] != ' ' || len > n || len < i + 2) return 0;
        const uint8_t *rec = p + i + 1, *rec_end = p + len - 1;
        const uint8_t *eq = memchr(rec, '=', (size_t)(rec_end - rec));
        if (!eq) return 0;
        size_t klen = (size_t)(eq - rec);
        const uint8_t *val = eq + 1;
        size_t vlen = (size_t)(rec_end - val);
        if (klen == 4 && memcmp(rec, "path", 4) == 0) {
            out->path.len = 0;
            if (buf_put(&out->path, val, vlen) < 0) return fail(r, "Header exceeds max size");
            out->has_path = true;
        } else if (klen == 8 && memcmp(rec, "linkpath", 8) == 0) {
            out->link.len = 0;
            if (buf_put(&out->link, val, vlen) < 0) return fail(r, "Header exceeds max size");
            out->has_link = true;
        } else if (klen == 4 && memcmp(rec, "size", 4) == 0) {
            uint64_t v = 0;
            size_t k = 0;
            while (k < vlen && val[k] >= '0' && val[k] <= '9' && v < (1ull << 58)) v = v * 10 + (uint64_t)(val[k++] - '0');
            if (k > 0 && k == vlen && v > 0) { /* tar-stream ignores a size that parses to 0 */
                out->size = v;
                out->has_size = true;
            }
        }
        p += len;
        n -= len;
    }
    return 0;
}

static void pax_clear(struct pax_fields *p)
{
    p->has_path = p->has_link = p->has_size = false;
    p->path.len = p->link.len = 0;
    p->size = 0;
}

static int copy_pax(struct pax_fields *dst, const struct pax_fields *src)
{
    pax_clear(dst);
    dst->has_path = src->has_path;
    dst->has_link = src->has_link;
    dst->has_size = src->has_size;
    dst->size = src->size;
    if (buf_put(&dst->path, src->path.p, src->path.len) < 0 || buf_put(&dst->link, src->link.p, src->link.len) < 0) return -1;
    return 0;
}

static int finish_long(struct tar_reader *r)
{
    const uint8_t *p = r->long_data.p;
    size_t n = r->long_data.len;
    switch (r->long_kind) {
    case 'L':
    case 'K': {
        buf_t *dst = r->long_kind == 'L' ? &r->gnu_path : &r->gnu_link;
        dst->len = 0;
        if (buf_put(dst, p, field_len(p ? p : (const uint8_t *)"", n)) < 0) return fail(r, "out of memory");
        if (r->long_kind == 'L') r->has_gnu_path = true;
        else r->has_gnu_link = true;
        return 0;
    }
    case 'g':
        pax_clear(&r->global);
        r->has_global = true;
        return decode_pax(r, p, n, &r->global);
    default: /* 'x': the global fields, then this header's own (tar-stream merges them only here) */
        pax_clear(&r->pax);
        if (r->has_global && copy_pax(&r->pax, &r->global) < 0) return fail(r, "out of memory");
        r->has_pax = true;
        return decode_pax(r, p, n, &r->pax);
    }
}

static bool zero_checksum(const uint8_t *b, uint64_t *sum_out)
{
    uint64_t sum = 8 * 32;
    for (int i = 0; i < 148; i++) sum += b[i];
    for (int i = 156; i < 512; i++) sum += b[i];
    *sum_out = sum;
    return sum == 8 * 32;
}

static int start_entry(struct tar_reader *r, const struct tar_events *ev, void *ctx)
{
    const uint8_t *b = r->block;
    uint64_t sum, stored;
    bool neg;
    if (zero_checksum(b, &sum)) return 0; /* an all-zero block: padding or the end marker */
    if (decode_num(b + 148, 8, &stored, &neg) < 0 || neg || stored != sum)
        return fail(r, "Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?");
    bool ustar = memcmp(b + 257, "ustar\0", 6) == 0;
    bool gnu = memcmp(b + 257, "ustar ", 6) == 0 && memcmp(b + 263, " \0", 2) == 0;
    if (!ustar && !gnu) return fail(r, "Invalid tar header: unknown format.");
    int flag = b[156] == 0 ? 0 : b[156] - '0';
    uint64_t size = 0;
    if (decode_num(b + 124, 12, &size, &neg) < 0 || neg || size > (1ull << 58)) return fail(r, "Invalid header");

    if (flag == 72 || flag == 55 || flag == 28 || flag == 30 || flag == 27) {
        if (size > TAR_MAX_LONG_HEADER) return fail(r, "Header exceeds max size");
        r->long_kind = flag == 72 ? 'x' : flag == 55 ? 'g' : flag == 27 ? 'K' : 'L';
        r->long_data.len = 0;
        r->remaining = size;
        r->pad = padding(size);
        r->state = ST_LONG;
        if (size > 0) return 0;
        r->state = ST_PAD;
        return finish_long(r);
    }

    /* The name: prefix/name from ustar, then a GNU long name, then pax, as tar-stream applies them. */
    r->name.len = r->link.len = 0;
    size_t nlen = field_len(b, 100);
    if (ustar && b[345]) {
        if (buf_put(&r->name, b + 345, field_len(b + 345, 155)) < 0 || buf_putc(&r->name, '/') < 0) return fail(r, "out of memory");
    }
    if (buf_put(&r->name, b, nlen) < 0) return fail(r, "out of memory");
    if (flag == 0 && r->name.len > 0 && r->name.p[r->name.len - 1] == '/') flag = 5;
    bool has_link = b[157] != 0;
    if (has_link && buf_put(&r->link, b + 157, field_len(b + 157, 100)) < 0) return fail(r, "out of memory");
    if (r->has_gnu_path) {
        r->name.len = 0;
        if (buf_put(&r->name, r->gnu_path.p, r->gnu_path.len) < 0) return fail(r, "out of memory");
        r->has_gnu_path = false;
    }
    if (r->has_gnu_link) {
        r->link.len = 0;
        if (buf_put(&r->link, r->gnu_link.p, r->gnu_link.len) < 0) return fail(r, "out of memory");
        has_link = true;
        r->has_gnu_link = false;
    }
    if (r->has_pax) {
        if (r->pax.has_path) {
            r->name.len = 0;
            if (buf_put(&r->name, r->pax.path.p, r->pax.path.len) < 0) return fail(r, "out of memory");
        }
        if (r->pax.has_link) {
            r->link.len = 0;
            if (buf_put(&r->link, r->pax.link.p, r->pax.link.len) < 0) return fail(r, "out of memory");
            has_link = true;
        }
        if (r->pax.has_size) size = r->pax.size;
        r->has_pax = false;
    }
    if (buf_putc(&r->name, 0) < 0 || buf_putc(&r->link, 0) < 0) return fail(r, "out of memory");

    uint64_t mode = 0, mtime = 0;
    if (decode_num(b + 100, 8, &mode, &neg) < 0 || neg) mode = 0;
    bool has_mtime = decode_num(b + 136, 12, &mtime, &neg) == 0 && !neg;
    enum tar_type type = type_of(flag);
    r->entry = (struct tar_entry){
        .name = (const char *)r->name.p,
        .name_len = r->name.len - 1,
        .link = has_link ? (const char *)r->link.p : NULL,
        .link_len = has_link ? r->link.len - 1 : 0,
        .type = type,
        .typeflag = (char)b[156],
        .mode = (uint32_t)(mode & 07777),
        .size = type == TAR_DIR ? 0 : size, /* tar-stream reads no body for a directory */
        .mtime = (int64_t)mtime,
        .has_mtime = has_mtime,
    };
    if (ev->entry(ctx, &r->entry)) return -1;
    r->remaining = r->entry.size;
    r->pad = padding(r->entry.size);
    r->state = ST_DATA;
    if (r->remaining == 0) {
        if (ev->end(ctx)) return -1;
        r->state = ST_PAD;
    }
    return 0;
}

int tar_feed(struct tar_reader *r, const uint8_t *p, size_t n, const struct tar_events *ev, void *ctx)
{
    r->error[0] = 0;
    while (n > 0) {
        switch (r->state) {
        case ST_HEADER: {
            size_t k = MIN(n, 512 - r->have);
            memcpy(r->block + r->have, p, k);
            r->have += k;
            p += k;
            n -= k;
            if (r->have == 512) {
                r->have = 0;
                if (start_entry(r, ev, ctx) < 0) return -1;
            }
            break;
        }
        case ST_LONG: {
            size_t k = (size_t)MIN((uint64_t)n, r->remaining);
            if (buf_put(&r->long_data, p, k) < 0) return fail(r, "Header exceeds max size");
            p += k;
            n -= k;
            r->remaining -= k;
            if (r->remaining == 0) {
                if (finish_long(r) < 0) return -1;
                r->state = ST_PAD;
            }
            break;
        }
        case ST_DATA: {
            size_t k = (size_t)MIN((uint64_t)n, r->remaining);
            if (ev->data(ctx, p, k)) return -1;
            p += k;
            n -= k;
            r->remaining -= k;
            if (r->remaining == 0) {
                if (ev->end(ctx)) return -1;
                r->state = ST_PAD;
            }
            break;
        }
        case ST_PAD: {
            size_t k = MIN(n, r->pad);
            p += k;
            n -= k;
            r->pad -= k;
            if (r->pad == 0) r->state = ST_HEADER;
            break;
        }
        }
        if (r->state == ST_PAD && r->pad == 0) r->state = ST_HEADER;
    }
    if (r->state == ST_PAD && r->pad == 0) r->state = ST_HEADER;
    return 0;
}

int tar_finish(struct tar_reader *r)
{
    if (r->state == ST_PAD && r->pad == 0) r->state = ST_HEADER;
    if (r->state != ST_HEADER || r->have != 0) return fail(r, "Unexpected end of data");
    return 0;
}
