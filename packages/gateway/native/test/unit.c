/*
 * The relay's wire code: base64, the frame tracker (frames of every header size split at every
 * point, and what it refuses), the frames it writes; then random bytes into the tracker for the
 * given number of seconds under ASan/UBSan (it must refuse or follow, never read out of bounds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire.h"

static int failures;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

static void test_b64(void)
{
    unsigned char out[16];
    size_t n = 99;
    CHECK(b64_decode("", out, sizeof out, &n) == 0 && n == 0);
    CHECK(b64_decode("aGk=", out, sizeof out, &n) == 0 && n == 2 && memcmp(out, "hi", 2) == 0);
    CHECK(b64_decode("aGV5", out, sizeof out, &n) == 0 && n == 3 && memcmp(out, "hey", 3) == 0);
    CHECK(b64_decode("aA==", out, sizeof out, &n) == 0 && n == 1 && out[0] == 'h');
    CHECK(b64_decode("+/+/", out, sizeof out, &n) == 0 && n == 3 && out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    CHECK(b64_decode("aGk", out, sizeof out, &n) < 0);       /* not a multiple of 4 */
    CHECK(b64_decode("a=Gk", out, sizeof out, &n) < 0);      /* padding inside */
    CHECK(b64_decode("aA==aGk=", out, sizeof out, &n) < 0);  /* padding before the end */
    CHECK(b64_decode("a\"Gk", out, sizeof out, &n) < 0);     /* not base64 */
    CHECK(b64_decode("aGV5aGV5", out, 5, &n) < 0);           /* longer than the room */
}

/* A frame's bytes with the given opcode and payload length (masked or not). */
static size_t make_frame(unsigned char *out, int fin_op, size_t len, int masked)
{
    size_t h = 2;
    out[0] = (unsigned char)fin_op;
    if (len < 126) out[1] = (unsigned char)len;
    else if (len <= 0xffff) {
        out[1] = 126, out[2] = (unsigned char)(len >> 8), out[3] = (unsigned char)len;
        h = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
        h = 10;
    }
    if (masked) {
        out[1] |= 0x80;
        memcpy(out + h, "\x01\x02\x03\x04", 4);
        h += 4;
    }
    memset(out + h, 'x', len);
    return h + len;
}

static void test_tracker(void)
{
    static unsigned char stream[300000];
    size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000 };
    size_t n = 0;
    size_t ends[32];
    int nends = 0;
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        n += make_frame(stream + n, i % 2 ? 0x82 : 0x01, lens[i], i == 3);
        ends[nends++] = n;
    }
    n += make_frame(stream + n, 0x89, 3, 0); /* a ping */
    ends[nends++] = n;
    /* Split at every point near each end, in pieces of one byte up to the rest. */
    for (size_t step = 1; step <= 7; step += 3) {
        struct ws_tracker t = { 0 };
        int e = 0;
        for (size_t i = 0; i < n; i += step) {
            size_t k = i + step <= n ? step : n - i;
            CHECK(ws_track(&t, stream + i, k) == 0);
            while (e < nends && ends[e] < i + k) e++;
            CHECK(ws_at_boundary(&t) == (e < nends && ends[e] == i + k));
        }
        CHECK(ws_at_boundary(&t) && !t.saw_close);
    }
    struct ws_tracker t = { 0 };
    unsigned char close[8];
    size_t cn = make_frame(close, 0x88, 2, 0);
    CHECK(ws_track(&t, close, cn - 1) == 0 && !t.saw_close);
    CHECK(ws_track(&t, close + cn - 1, 1) == 0 && t.saw_close && ws_at_boundary(&t));
    struct ws_tracker empty_close = { 0 };
    CHECK(ws_track(&empty_close, (const unsigned char *)"\x88\x00", 2) == 0 && empty_close.saw_close);

    /* What is not WebSocket framing. */
    const char *bad[] = { "\x83\x00", "\x8b\x00", "\x09\x00" /* a fragmented ping */, "\x89\x7e\x00\x7e" /* a ping over 125 */,
                          "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00" /* a 64-bit length with its top bit */ };
    size_t badlen[] = { 2, 2, 2, 4, 10 };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct ws_tracker b = { 0 };
        CHECK(ws_track(&b, (const unsigned char *)bad[i], badlen[i]) < 0);
    }
}

static void test_writers(void)
{
    unsigned char out[300];
    size_t n = ws_text_frame(out, sizeof out, "{\"a\":1}");
    CHECK(n == 9 && out[0] == 0x81 && out[1] == 7 && memcmp(out + 2, "{\"a\":1}", 7) == 0);
    char long_text[200];
    memset(long_text, 'y', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = 0;
    n = ws_text_frame(out, sizeof out, long_text);
    CHECK(n == 4 + 199 && out[1] == 126 && out[2] == 0 && out[3] == 199);
    CHECK(ws_text_frame(out, 100, long_text) == 0); /* does not fit */
    n = ws_close_frame(out, sizeof out, 4001, "host lost: gone");
    CHECK(n == 2 + 2 + 15 && out[0] == 0x88 && out[1] == 17 && out[2] == 0x0f && out[3] == 0xa1 && memcmp(out + 4, "host lost: gone", 15) == 0);
    /* A reason over 123 bytes is cut, never inside a UTF-8 sequence: 61 × "é" is 122 bytes, 62 is 124. */
    char utf8[2 * 62 + 1];
    for (int i = 0; i < 62; i++) utf8[2 * i] = (char)0xc3, utf8[2 * i + 1] = (char)0xa9;
    utf8[124] = 0;
    n = ws_close_frame(out, sizeof out, 4001, utf8);
    CHECK(n == 2 + 2 + 122 && out[1] == 124);
    struct ws_tracker t = { 0 };
    CHECK(ws_track(&t, out, n) == 0 && t.saw_close && ws_at_boundary(&t));
}

static void fuzz(double seconds)
{
    unsigned char buf[4096];
    unsigned long runs = 0;
    srand((unsigned)time(NULL));
    clock_t until = clock() + (clock_t)(seconds * CLOCKS_PER_SEC);
    while (clock() < until) {
        struct ws_tracker t = { 0 };
        for (int round = 0; round < 8; round++) {
            size_t n = (size_t)rand() % sizeof buf;
            for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)rand();
            /* Bias towards plausible headers so payloads and boundaries are reached. */
            if (n > 2 && rand() % 2) buf[0] = (unsigned char)(0x80 | (rand() % 3)), buf[1] = (unsigned char)(rand() % 130);
            if (ws_track(&t, buf, n) < 0) break;
        }
        runs++;
    }
    printf("fuzzed the frame tracker: %lu runs in %.0f s\n", runs, seconds);
}

int main(int argc, char **argv)
{
    test_b64();
    test_tracker();
    test_writers();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("wire: all checks passed\n");
    fuzz(argc > 1 ? atof(argv[1]) : 2);
    return 0;
}
