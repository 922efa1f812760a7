/* Unit tests of the tar reader and writer (see unit.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tar.h"
#include "unit.h"

struct seen {
    int entries;
    char name[8][600];
    char link[8][600];
    enum tar_type type[8];
    uint64_t size[8], data[8];
    uint32_t mode[8];
    int ends;
};

static int on_entry(void *ctx, const struct tar_entry *e)
{
    struct seen *s = ctx;
    if (s->entries == 8) return 1;
    int i = s->entries++;
    snprintf(s->name[i], sizeof s->name[i], "%.*s", (int)e->name_len, e->name);
    snprintf(s->link[i], sizeof s->link[i], "%.*s", e->link ? (int)e->link_len : 0, e->link ? e->link : "");
    s->type[i] = e->type;
    s->size[i] = e->size;
    s->mode[i] = e->mode;
    s->data[i] = 0;
    return 0;
}

static int on_data(void *ctx, const uint8_t *p, size_t n)
{
    struct seen *s = ctx;
    (void)p;
    s->data[s->entries - 1] += n;
    return 0;
}

static int on_end(void *ctx)
{
    ((struct seen *)ctx)->ends++;
    return 0;
}

static const struct tar_events EV = {on_entry, on_data, on_end};

static int read_all(const uint8_t *p, size_t n, size_t chunk, struct seen *s, char *err, size_t cap)
{
    struct tar_reader r;
    tar_reader_init(&r);
    memset(s, 0, sizeof *s);
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += chunk) rc = tar_feed(&r, p + off, off + chunk > n ? n - off : chunk, &EV, s);
    if (rc == 0) rc = tar_finish(&r);
    snprintf(err, cap, "%s", r.error);
    tar_reader_free(&r);
    return rc;
}

static void add_file(buf_t *b, const char *name, enum tar_type type, uint32_t mode, size_t size, const char *link)
{
    CHECK(tar_write_header(b, name, strlen(name), type, mode, size, 1700000000, link, link ? strlen(link) : 0) == 0);
    for (size_t i = 0; i < size; i++) buf_putc(b, (uint8_t)i);
    static const uint8_t zeros[512];
    if (size % 512) buf_put(b, zeros, 512 - size % 512);
}

static void test_tar_round_trip(void)
{
    char long_dir[300], long_link[300];
    memset(long_dir, 'd', 120);
    strcpy(long_dir + 120, "/name-after-a-long-prefix.txt");
    memset(long_link, 'l', 250);
    long_link[250] = 0;
    char hundred[101];
    memset(hundred, 'h', 100);
    hundred[100] = 0;
    buf_t b = {0};
    add_file(&b, "a.txt", TAR_FILE, 0644, 1000, NULL);
    add_file(&b, "dir", TAR_DIR, 0755, 0, NULL);
    add_file(&b, long_dir, TAR_FILE, 0600, 3, NULL);
    add_file(&b, "caf\xC3\xA9/\xE2\x9C\x93", TAR_FILE, 0640, 0, NULL);
    add_file(&b, "ln", TAR_SYMLINK, 0777, 0, long_link);
    add_file(&b, hundred, TAR_FILE, 0644, 0, NULL);
    add_file(&b, "new\nline=and=equals", TAR_SYMLINK, 0777, 0, "../x");
    static const uint8_t end[1024];
    buf_put(&b, end, sizeof end);
    CHECK(b.len % 512 == 0);
    /* Names ustar cannot split (a leading slash leaves no prefix) go to pax; a file cannot end in '/'. */
    char lead[160] = "/";
    memset(lead + 1, 's', 150);
    buf_t odd = {0};
    CHECK(tar_write_header(&odd, lead, strlen(lead), TAR_FILE, 0644, 0, 1, NULL, 0) == 0 && odd.len == 3 * 512);
    CHECK(tar_write_header(&odd, "file/", 5, TAR_FILE, 0644, 0, 1, NULL, 0) == -1);
    CHECK(tar_write_header(&odd, "", 0, TAR_FILE, 0644, 0, 1, NULL, 0) == -1);
    buf_free(&odd);
    size_t chunks[] = {1, 7, 512, 100000};
    for (size_t c = 0; c < 4; c++) {
        struct seen s;
        char err[160];
        CHECK(read_all(b.p, b.len, chunks[c], &s, err, sizeof err) == 0);
        CHECK(s.entries == 7 && s.ends == 7);
        CHECK_STR(s.name[0], "a.txt");
        CHECK(s.size[0] == 1000 && s.data[0] == 1000 && s.mode[0] == 0644 && s.type[0] == TAR_FILE);
        CHECK_STR(s.name[1], "dir/");
        CHECK(s.type[1] == TAR_DIR);
        CHECK_STR(s.name[2], long_dir);
        CHECK(s.data[2] == 3);
        CHECK_STR(s.name[3], "caf\xC3\xA9/\xE2\x9C\x93");
        CHECK_STR(s.link[4], long_link);
        CHECK(s.type[4] == TAR_SYMLINK);
        CHECK_STR(s.name[5], hundred);
        CHECK_STR(s.name[6], "new\nline=and=equals");
        CHECK_STR(s.link[6], "../x");
    }
    buf_free(&b);
}

static void test_tar_faults(void)
{
    buf_t b = {0};
    add_file(&b, "whole.txt", TAR_FILE, 0644, 8, NULL);
    add_file(&b, "cut.bin", TAR_FILE, 0644, 2000, NULL);
    struct seen s;
    char err[160];
    /* Cut inside the second entry's data, inside its header, and between entries. */
    CHECK(read_all(b.p, 1024 + 512 + 100, 512, &s, err, sizeof err) == -1 && strcmp(err, "Unexpected end of data") == 0);
    CHECK(read_all(b.p, 1024 + 100, 512, &s, err, sizeof err) == -1 && strcmp(err, "Unexpected end of data") == 0);
    CHECK(read_all(b.p, 1024, 512, &s, err, sizeof err) == 0 && s.entries == 1);
    /* A flipped byte breaks the checksum. */
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.p, b.len);
    copy[3] ^= 1;
    CHECK(read_all(copy, b.len, 512, &s, err, sizeof err) == -1 && strstr(err, "Invalid tar header"));
    /* Not ustar at all (checksum recomputed so only the magic is wrong). */
    memcpy(copy, b.p, b.len);
    memcpy(copy + 257, "nope!\0", 6);
    memset(copy + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += copy[i];
    snprintf((char *)copy + 148, 8, "%06o", sum);
    CHECK(read_all(copy, b.len, 512, &s, err, sizeof err) == -1 && strstr(err, "unknown format"));
    free(copy);
    buf_free(&b);
}

static void raw_header(uint8_t *h, const char *name, char flag, const char *size_field, uint64_t size)
{
    memset(h, 0, 512);
    memcpy(h, name, strlen(name));
    memcpy(h + 100, "0000644", 7);
    if (size_field) memcpy(h + 124, size_field, 12);
    else snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    h[156] = (uint8_t)flag;
    memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static void test_tar_extended_headers(void)
{
    /* pax path + size, a global header merged in, a GNU long name, base-256 sizes. */
    buf_t b = {0};
    uint8_t h[512];
    const char *global = "22 linkpath=from-glob\n";
    raw_header(h, "g", 'g', NULL, strlen(global));
    buf_put(&b, h, 512);
    uint8_t block[512] = {0};
    memcpy(block, global, strlen(global));
    buf_put(&b, block, 512);
    const char *pax = "21 path=pax/override\n10 size=3\n";
    raw_header(h, "x", 'x', NULL, strlen(pax));
    buf_put(&b, h, 512);
    memset(block, 0, 512);
    memcpy(block, pax, strlen(pax));
    buf_put(&b, block, 512);
    raw_header(h, "ustar-name", '0', NULL, 0);
    buf_put(&b, h, 512);
    memset(block, 'z', 3);
    buf_put(&b, block, 512);
    const char *gnu = "gnu/long/name";
    raw_header(h, "././@LongLink", 'L', NULL, strlen(gnu) + 1);
    buf_put(&b, h, 512);
    memset(block, 0, 512);
    memcpy(block, gnu, strlen(gnu));
    buf_put(&b, block, 512);
    char base256[12] = {(char)0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
    raw_header(h, "short-name", '0', base256, 0);
    buf_put(&b, h, 512);
    memset(block, 'q', 5);
    buf_put(&b, block, 512);
    raw_header(h, "old-style-dir/", 0, NULL, 0);
    h[156] = 0;
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    buf_put(&b, h, 512);
    struct seen s;
    char err[160];
    CHECK(read_all(b.p, b.len, 33, &s, err, sizeof err) == 0);
    CHECK(s.entries == 3);
    CHECK_STR(s.name[0], "pax/override");
    CHECK_STR(s.link[0], "from-glob");
    CHECK(s.size[0] == 3 && s.data[0] == 3);
    CHECK_STR(s.name[1], "gnu/long/name");
    CHECK(s.size[1] == 5 && s.data[1] == 5);
    CHECK_STR(s.name[2], "old-style-dir/");
    CHECK(s.type[2] == TAR_DIR);
    /* An extended header past the limit is refused before it is buffered. */
    raw_header(h, "x", 'x', NULL, TAR_MAX_LONG_HEADER + 1);
    CHECK(read_all(h, 512, 512, &s, err, sizeof err) == -1 && strstr(err, "exceeds max size"));
    /* A negative base-256 size is an invalid header. */
    char negative[12];
    memset(negative, 0xFF, 12);
    raw_header(h, "neg", '0', negative, 0);
    CHECK(read_all(h, 512, 512, &s, err, sizeof err) == -1 && strcmp(err, "Invalid header") == 0);
    buf_free(&b);
}

void tar_tests(void)
{
    test_tar_round_trip();
    test_tar_faults();
    test_tar_extended_headers();
}
