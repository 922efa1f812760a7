#include "tar.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void octal(uint8_t *field, size_t width, uint64_t v)
{
    /* width-1 digits then NUL, like GNU tar; values that do not fit are clamped by the caller */
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%0*" PRIo64, (int)(width - 1), v);
    memcpy(field, tmp, width - 1);
    field[width - 1] = 0;
}

static void size_field(uint8_t *field, uint64_t size)
{
    if (size <= 077777777777ull) {
        octal(field, 12, size);
        return;
    }
    /* base-256, as GNU tar and tar-stream write sizes of 8 GiB and more */
    field[0] = 0x80;
    for (int i = 11; i > 0; i--) {
        field[i] = (uint8_t)(size & 0xff);
        size >>= 8;
    }
}

static char typeflag(enum tar_type t)
{
    switch (t) {
    case TAR_DIR: return '5';
    case TAR_SYMLINK: return '2';
    case TAR_LINK: return '1';
    default: return '0';
    }
}

static void checksum(uint8_t *b)
{
    memset(b + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += b[i];
    char tmp[8];
    snprintf(tmp, sizeof tmp, "%06o", sum & 0777777);
    memcpy(b + 148, tmp, 6);
    b[154] = 0;
    b[155] = ' ';
}

static void block(uint8_t *b, const char *name, size_t name_len, const char *prefix, size_t prefix_len, char flag, uint32_t mode,
                  uint64_t size, int64_t mtime, const char *link, size_t link_len)
{
    memset(b, 0, 512);
    memcpy(b, name, name_len);
    octal(b + 100, 8, mode & 07777);
    octal(b + 108, 8, 0);
    octal(b + 116, 8, 0);
    size_field(b + 124, size);
    octal(b + 136, 12, (uint64_t)(mtime < 0 ? 0 : mtime > 077777777777ll ? 077777777777ll : mtime));
    b[156] = (uint8_t)flag;
    if (link) memcpy(b + 157, link, link_len);
    memcpy(b + 257, "ustar\0" "00", 8);
    if (prefix_len) memcpy(b + 345, prefix, prefix_len);
    checksum(b);
}

static bool ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80 || s[i] == 0) return false;
    return true;
}

/* Where to split a long ustar name into prefix/name (0: no need), or -1 when ustar cannot hold it. */
static long split_at(const char *name, size_t n)
{
    if (n <= 100) return 0;
    for (size_t i = 1; i < n; i++) { /* a split needs a non-empty prefix */
        if (name[i] != '/') continue;
        if (n - i - 1 <= 100) return i <= 155 && n - i - 1 > 0 ? (long)i : -1;
    }
    return -1;
}

static int pax_record(buf_t *out, const char *key, const char *val, size_t vlen)
{
    /* "LEN key=value\n" where LEN counts its own digits */
    size_t body = 1 + strlen(key) + 1 + vlen + 1;
    size_t digits = 1, len;
    for (;;) {
        len = body + digits;
        size_t d = 1;
        for (size_t x = len; x >= 10; x /= 10) d++;
        if (d == digits) break;
        digits = d;
    }
    char head[32];
    int hn = snprintf(head, sizeof head, "%zu %s=", len, key);
    if (buf_put(out, head, (size_t)hn) < 0 || buf_put(out, val, vlen) < 0 || buf_putc(out, '\n') < 0) return -1;
    return 0;
}

int tar_write_header(buf_t *out, const char *name, size_t name_len, enum tar_type type, uint32_t mode, uint64_t size, int64_t mtime,
                     const char *link, size_t link_len)
{
    char full[4096 + 2];
    /* A trailing slash means a directory to every reader: no other entry may have one. */
    if (name_len == 0 || name_len + 1 >= sizeof full || (type != TAR_DIR && name[name_len - 1] == '/')) return -1;
    memcpy(full, name, name_len);
    if (type == TAR_DIR && (name_len == 0 || name[name_len - 1] != '/')) full[name_len++] = '/';
    char flag = typeflag(type);
    long at = ascii(full, name_len) ? split_at(full, name_len) : -1;
    bool link_fits = !link || (link_len <= 100 && ascii(link, link_len));
    uint8_t b[512];
    if (at >= 0 && link_fits) {
        size_t pre = at > 0 ? (size_t)at : 0, skip = at > 0 ? (size_t)at + 1 : 0;
        block(b, full + skip, name_len - skip, full, pre, flag, mode, size, mtime, link, link_len);
        return buf_put(out, b, 512);
    }
    buf_t pax = {0};
    int r = pax_record(&pax, "path", full, name_len);
    if (r == 0 && link) r = pax_record(&pax, "linkpath", link, link_len);
    if (r == 0) {
        block(b, "PaxHeader", 9, NULL, 0, 'x', mode, pax.len, mtime, NULL, 0);
        r = buf_put(out, b, 512);
    }
    if (r == 0) r = buf_put(out, pax.p, pax.len);
    static const uint8_t zeros[512];
    if (r == 0 && pax.len % 512) r = buf_put(out, zeros, 512 - pax.len % 512);
    buf_free(&pax);
    if (r == 0) {
        /* The ustar header names the entry by a stand-in a non-pax reader can still store. */
        block(b, "PaxHeader", 9, NULL, 0, flag, mode, size, mtime, NULL, 0);
        r = buf_put(out, b, 512);
    }
    return r;
}
