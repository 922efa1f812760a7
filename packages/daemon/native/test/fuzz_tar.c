/* tar fuzzing (see fuzz.c): mutated archives in random chunks, and the writer read back. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz.h"
#include "tar.h"
#include "util.h"

struct tally {
    uint64_t size, got;
    bool open;
};

static int t_entry(void *ctx, const struct tar_entry *e)
{
    struct tally *t = ctx;
    CHECK(!t->open);
    CHECK(e->name_len <= TAR_MAX_LONG_HEADER && (!e->link || e->link_len <= TAR_MAX_LONG_HEADER));
    t->size = e->size;
    t->got = 0;
    t->open = true;
    return below(50) == 0; /* sometimes the consumer refuses, as upload does */
}

static int t_data(void *ctx, const uint8_t *p, size_t n)
{
    struct tally *t = ctx;
    CHECK(t->open && n > 0 && t->got + n <= t->size);
    if (n) CHECK(p[0] == p[0] && p[n - 1] == p[n - 1]); /* readable, per ASan */
    t->got += n;
    return 0;
}

static int t_end(void *ctx)
{
    struct tally *t = ctx;
    CHECK(t->open && t->got == t->size);
    t->open = false;
    return 0;
}

static const struct tar_events TALLY = {t_entry, t_data, t_end};

struct collected {
    int entries;
    enum tar_type type;
    char name[4200], link[300];
    size_t name_len, link_len;
};

static int c_entry(void *ctx, const struct tar_entry *e)
{
    struct collected *c = ctx;
    c->entries++;
    c->type = e->type;
    c->name_len = MIN(e->name_len, sizeof c->name);
    memcpy(c->name, e->name, c->name_len);
    c->link_len = e->link ? MIN(e->link_len, sizeof c->link) : 0;
    if (e->link) memcpy(c->link, e->link, c->link_len);
    return 0;
}

static int c_data(void *ctx, const uint8_t *p, size_t n)
{
    (void)ctx, (void)p, (void)n;
    return 0;
}

static int c_end(void *ctx)
{
    (void)ctx;
    return 0;
}

static const struct tar_events COLLECT = {c_entry, c_data, c_end};

static size_t tar_seed(uint8_t *out, size_t cap)
{
    buf_t b = {0};
    static const uint8_t zeros[1024];
    char long_name[400];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    tar_write_header(&b, "a.txt", 5, TAR_FILE, 0644, 700, 1, NULL, 0);
    for (int i = 0; i < 700; i++) buf_putc(&b, (uint8_t)i);
    buf_put(&b, zeros, 1024 - 700);
    tar_write_header(&b, "d", 1, TAR_DIR, 0755, 0, 1, NULL, 0);
    tar_write_header(&b, long_name, strlen(long_name), TAR_SYMLINK, 0777, 0, 1, "../../x", 7);
    tar_write_header(&b, "h", 1, TAR_LINK, 0644, 0, 1, "a.txt", 5);
    buf_put(&b, zeros, 1024);
    size_t n = MIN(b.len, cap);
    memcpy(out, b.p, n);
    buf_free(&b);
    return n;
}

void fuzz_tar(double until)
{
    static uint8_t seed[16384], buf[20000];
    size_t seed_len = tar_seed(seed, sizeof seed);
    long rounds = 0;
    while (now() < until) {
        memcpy(buf, seed, seed_len);
        size_t len = seed_len;
        for (size_t k = 1 + below(4); k > 0; k--) len = mutate(buf, len, sizeof buf, seed, seed_len);
        struct tar_reader r;
        tar_reader_init(&r);
        struct tally t = {0};
        int rc = 0;
        for (size_t off = 0; off < len && rc == 0;) {
            size_t chunk = 1 + below(1500);
            size_t k = MIN(len - off, chunk);
            rc = tar_feed(&r, buf + off, k, &TALLY, &t);
            off += k;
        }
        if (rc == 0) tar_finish(&r);
        tar_reader_free(&r);

        /* Whatever name the writer stores (no NUL, up to 4 KiB), the reader gives back. */
        char name[4100], link[300];
        size_t nl = 1 + below(below(2) ? 120 : 4000), ll = 1 + below(250);
        for (size_t i = 0; i < nl; i++) name[i] = (char)(1 + below(255));
        for (size_t i = 0; i < ll; i++) link[i] = (char)(1 + below(255));
        enum tar_type type = below(3) == 0 ? TAR_DIR : below(2) ? TAR_SYMLINK : TAR_FILE;
        bool has_link = type == TAR_SYMLINK;
        buf_t b = {0};
        if (type != TAR_DIR && name[nl - 1] == '/') {
            CHECK(tar_write_header(&b, name, nl, type, 0644, 0, 1, NULL, 0) == -1);
            name[nl - 1] = 'x';
        }
        CHECK(tar_write_header(&b, name, nl, type, 0644, 0, 1, has_link ? link : NULL, has_link ? ll : 0) == 0);
        struct collected c = {0};
        tar_reader_init(&r);
        CHECK(tar_feed(&r, b.p, b.len, &COLLECT, &c) == 0 && tar_finish(&r) == 0);
        size_t want = nl + (type == TAR_DIR && name[nl - 1] != '/');
        CHECK(c.entries == 1 && c.type == type && c.name_len == want && memcmp(c.name, name, nl) == 0);
        CHECK(!has_link || (c.link_len == ll && memcmp(c.link, link, ll) == 0));
        tar_reader_free(&r);
        buf_free(&b);
        rounds++;
    }
    printf("fuzz: tar %ld rounds\n", rounds);
}

