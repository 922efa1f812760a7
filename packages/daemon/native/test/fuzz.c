/*
 * Time-bounded fuzzing of the supervisor's parsers under ASan and UBSan: random and mutated
 * frame streams, JSON texts and tar archives, fed in random chunks. Besides "no crash, no
 * sanitizer report", it checks properties: chunking never changes the frames read, whatever
 * JSON the reader accepts the writer re-encodes to an equal document, any bytes the writer
 * encodes parse back, and any name the tar writer stores reads back unchanged.
 * Usage: fuzz [seconds] [seed]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "frame.h"
#include "fuzz.h"
#include "json.h"
#include "tar.h"

uint64_t rng;
uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

const uint8_t INTERESTING[] = {0, 1, 4, 5, 9, 0x7F, 0x80, 0xBF, 0xC0, 0xE0, 0xED, 0xF0, 0xF4, 0xFF, '"', '\\', '[', ']', '{', '}',
                                      ':', ',', '-', '0', 'e', '.', 'u', 'x', 'L', 'g', '/', ' ', '\n', '='};
const size_t INTERESTING_LEN = sizeof INTERESTING;

/* One random edit of buf (len bytes, cap capacity); returns the new length. */
size_t mutate(uint8_t *buf, size_t len, size_t cap, const uint8_t *other, size_t other_len)
{
    switch (below(8)) {
    case 0:
        if (len) buf[below(len)] ^= (uint8_t)(1u << below(8));
        break;
    case 1:
        if (len) buf[below(len)] = INTERESTING[below(INTERESTING_LEN)];
        break;
    case 2: { /* insert */
        size_t at = below(len + 1), n = 1 + below(16);
        if (len + n > cap) break;
        memmove(buf + at + n, buf + at, len - at);
        for (size_t i = 0; i < n; i++) buf[at + i] = below(2) ? (uint8_t)next() : INTERESTING[below(INTERESTING_LEN)];
        len += n;
        break;
    }
    case 3: { /* delete */
        if (!len) break;
        size_t at = below(len), n = 1 + below(MIN(len - at, 64));
        memmove(buf + at, buf + at + n, len - at - n);
        len -= n;
        break;
    }
    case 4: { /* duplicate a range */
        if (!len) break;
        size_t at = below(len), n = 1 + below(MIN(len - at, 256)), to = below(len + 1);
        if (len + n > cap) break;
        uint8_t tmp[256];
        memcpy(tmp, buf + at, n);
        memmove(buf + to + n, buf + to, len - to);
        memcpy(buf + to, tmp, n);
        len += n;
        break;
    }
    case 5: /* splice another seed's tail */
        if (other_len) {
            size_t at = below(len + 1), from = below(other_len), n = MIN(other_len - from, cap - at);
            memcpy(buf + at, other + from, n);
            len = at + n;
        }
        break;
    case 6:
        len = below(len + 1);
        break;
    default: /* a 32-bit field set to an edge value (lengths, sizes) */
        if (len >= 4) {
            static const uint32_t edges[] = {0, 4, 5, 9, MAX_CHUNK, MAX_CHUNK + 1, MAX_CHANNEL_FRAME, MAX_CHANNEL_FRAME + 1, 0x7fffffff, 0xffffffff};
            put_be32(buf + below(len - 3), edges[below(sizeof edges / sizeof *edges)]);
        }
    }
    return len;
}

/* ---------------------------------------------------------------- frames */

static int read_frames(const uint8_t *p, size_t n, bool random_chunks, uint8_t *log, size_t *log_len)
{
    struct frame_reader r;
    fr_init(&r, MAX_CHANNEL_FRAME);
    int rc = 0;
    *log_len = 0;
    for (size_t off = 0; off < n && rc == 0;) {
        size_t avail;
        uint8_t *dst = fr_space(&r, &avail);
        CHECK(dst != NULL);
        size_t k = MIN(n - off, avail);
        size_t chunk = 1 + below(700); /* once: MIN evaluates its arguments twice */
        if (random_chunks) k = MIN(k, chunk);
        memcpy(dst, p + off, k);
        fr_commit(&r, k);
        off += k;
        struct frame f;
        while ((rc = fr_next(&r, &f)) == 1) {
            CHECK(f.op <= OP_MSG && f.len <= MAX_CHANNEL_FRAME - 5);
            CHECK(f.op != OP_CREDIT || f.len == 4);
            CHECK(f.op != OP_DATA || f.len <= MAX_CHUNK);
            /* A digest of what was read, to compare chunkings. */
            uint32_t sum = f.op * 31u + f.id;
            for (size_t i = 0; i < f.len; i++) sum = sum * 131u + f.payload[i];
            memcpy(log + *log_len, &sum, 4);
            *log_len += 4;
            rc = 0;
            if (*log_len > 4000) break;
        }
        if (*log_len > 4000) break;
    }
    fr_free(&r);
    return rc;
}

static size_t frame_seed(uint8_t *out)
{
    size_t n = 0;
    const char *msg = "{\"t\":\"call\",\"id\":1,\"m\":\"fs.stat\",\"p\":{}}";
    frame_header(out, OP_MSG, 0, strlen(msg));
    memcpy(out + 9, msg, strlen(msg));
    n += 9 + strlen(msg);
    for (uint32_t id = 1; id < 5; id++) {
        frame_header(out + n, OP_DATA, id, id * 10);
        memset(out + n + 9, (int)id, id * 10);
        n += 9 + id * 10;
        frame_header(out + n, OP_CREDIT, id, 4);
        put_be32(out + n + 9, 131072);
        n += 13;
        frame_header(out + n, id % 2 ? OP_END : OP_ABORT, id, id % 2 ? 0 : 3);
        memcpy(out + n + 9, "why", id % 2 ? 0 : 3);
        n += id % 2 ? 9 : 12;
    }
    return n;
}

void fuzz_frames(double until)
{
    static uint8_t seed[4096], buf[16384], log_a[4100], log_b[4100];
    size_t seed_len = frame_seed(seed);
    long rounds = 0;
    while (now() < until) {
        memcpy(buf, seed, seed_len);
        size_t len = seed_len;
        for (size_t k = below(6); k > 0; k--) len = mutate(buf, len, sizeof buf, seed, seed_len);
        if (below(16) == 0) {
            len = below(sizeof buf);
            for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)next();
        }
        size_t la, lb;
        int ra = read_frames(buf, len, false, log_a, &la);
        int rb = read_frames(buf, len, true, log_b, &lb);
        CHECK(ra == rb && la == lb && memcmp(log_a, log_b, la) == 0);
        rounds++;
    }
    printf("fuzz: frames %ld rounds\n", rounds);
}

int check_failures, check_count;

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 6;
    rng = argc > 2 ? strtoull(argv[2], NULL, 10) : (uint64_t)time(NULL) * 2654435761u + 1;
    printf("fuzz: seed %llu, %.1f s\n", (unsigned long long)rng, seconds);
    double start = now();
    fuzz_frames(start + seconds / 3);
    fuzz_json(start + 2 * seconds / 3);
    fuzz_tar(start + seconds);
    printf("fuzz: %d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}
