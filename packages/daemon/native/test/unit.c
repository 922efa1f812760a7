/*
 * Unit tests of the supervisor's parsers and encoders: the channel frame reader, the JSON
 * reader and writer and path resolution here, the tar reader and writer in unit_tar.c, with
 * the edge cases hostile input would try. Run under ASan and UBSan by `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "unit.h"
#include "frame.h"
#include "json.h"
#include "path.h"

/* ---------------------------------------------------------------- frames */

static size_t frame_bytes(uint8_t *out, uint8_t op, uint32_t id, const void *payload, size_t len)
{
    frame_header(out, op, id, len);
    if (len) memcpy(out + FRAME_HEADER, payload, len);
    return FRAME_HEADER + len;
}

static void test_frames_split_across_reads(void)
{
    uint8_t stream[256];
    size_t n = frame_bytes(stream, OP_MSG, 0, "{\"a\":1}", 7);
    n += frame_bytes(stream + n, OP_DATA, 7, "xyz", 3);
    uint8_t credit[4];
    put_be32(credit, 131072);
    n += frame_bytes(stream + n, OP_CREDIT, 7, credit, 4);
    n += frame_bytes(stream + n, OP_END, 9, NULL, 0);
    /* Every split point, one byte at a time included, yields the same four frames. */
    for (size_t step = 1; step <= n; step++) {
        struct frame_reader r;
        fr_init(&r, MAX_CHANNEL_FRAME);
        int seen = 0;
        for (size_t off = 0; off < n; off += step) {
            CHECK(fr_push(&r, stream + off, off + step > n ? n - off : step) == 0);
            struct frame f;
            int got;
            while ((got = fr_next(&r, &f)) == 1) {
                if (seen == 0) CHECK(f.op == OP_MSG && f.id == 0 && f.len == 7 && memcmp(f.payload, "{\"a\":1}", 7) == 0);
                if (seen == 1) CHECK(f.op == OP_DATA && f.id == 7 && f.len == 3 && memcmp(f.payload, "xyz", 3) == 0);
                if (seen == 2) CHECK(f.op == OP_CREDIT && be32(f.payload) == 131072);
                if (seen == 3) CHECK(f.op == OP_END && f.id == 9 && f.len == 0);
                seen++;
            }
            CHECK(got == 0);
        }
        CHECK(seen == 4);
        fr_free(&r);
    }
}

static int first_error(const uint8_t *bytes, size_t n, char *why, size_t cap)
{
    struct frame_reader r;
    fr_init(&r, MAX_CHANNEL_FRAME);
    fr_push(&r, bytes, n);
    struct frame f;
    int got;
    while ((got = fr_next(&r, &f)) == 1) {
    }
    snprintf(why, cap, "%s", r.error);
    fr_free(&r);
    return got;
}

static void test_frames_refused(void)
{
    char why[128];
    uint8_t zero[9] = {0, 0, 0, 0, OP_DATA, 0, 0, 0, 1};
    CHECK(first_error(zero, 9, why, sizeof why) == -1 && strstr(why, "outside 5.."));
    uint8_t four_gib[9] = {0xff, 0xff, 0xff, 0xff, OP_MSG};
    CHECK(first_error(four_gib, 5, why, sizeof why) == -1 && strstr(why, "4294967295"));
    uint8_t just_over[4];
    put_be32(just_over, MAX_CHANNEL_FRAME + 1);
    CHECK(first_error(just_over, 4, why, sizeof why) == -1);
    uint8_t unknown[9];
    frame_header(unknown, 9, 1, 0);
    CHECK(first_error(unknown, 9, why, sizeof why) == -1 && strstr(why, "unknown channel op 9"));
    uint8_t msg_on_stream[9];
    frame_header(msg_on_stream, OP_MSG, 3, 0);
    CHECK(first_error(msg_on_stream, 9, why, sizeof why) == -1);
    uint8_t data_on_zero[10];
    frame_bytes(data_on_zero, OP_DATA, 0, "x", 1);
    CHECK(first_error(data_on_zero, 10, why, sizeof why) == -1);
    uint8_t short_credit[12];
    frame_bytes(short_credit, OP_CREDIT, 1, "abc", 3);
    CHECK(first_error(short_credit, 12, why, sizeof why) == -1 && strstr(why, "4-byte"));
    uint8_t end_with_payload[10];
    frame_bytes(end_with_payload, OP_END, 1, "x", 1);
    CHECK(first_error(end_with_payload, 10, why, sizeof why) == -1);
    /* A DATA frame one byte over MAX_CHUNK. */
    size_t big = FRAME_HEADER + MAX_CHUNK + 1;
    uint8_t *over = calloc(1, big);
    frame_header(over, OP_DATA, 1, MAX_CHUNK + 1);
    CHECK(first_error(over, big, why, sizeof why) == -1 && strstr(why, "MAX_CHUNK"));
    free(over);
    /* An incomplete header is not an error, just more to wait for. */
    CHECK(first_error(zero, 3, why, sizeof why) == 0);
}

static void test_frames_large_message(void)
{
    /* A 3 MiB message grows the buffer; the next small frame still parses after it. */
    size_t len = 3u << 20;
    uint8_t *stream = malloc(FRAME_HEADER + len + FRAME_HEADER + 1);
    frame_header(stream, OP_MSG, 0, len);
    memset(stream + FRAME_HEADER, 'x', len);
    frame_bytes(stream + FRAME_HEADER + len, OP_DATA, 5, "y", 1);
    struct frame_reader r;
    fr_init(&r, MAX_CHANNEL_FRAME);
    int seen = 0;
    size_t total = FRAME_HEADER + len + FRAME_HEADER + 1;
    for (size_t off = 0; off < total;) {
        size_t avail;
        uint8_t *dst = fr_space(&r, &avail);
        CHECK(dst != NULL && avail > 0);
        size_t k = total - off < avail ? total - off : avail;
        if (k > 65536) k = 65536;
        memcpy(dst, stream + off, k);
        fr_commit(&r, k);
        off += k;
        struct frame f;
        while (fr_next(&r, &f) == 1) {
            if (seen == 0) CHECK(f.op == OP_MSG && f.len == len && f.payload[len - 1] == 'x');
            if (seen == 1) CHECK(f.op == OP_DATA && f.id == 5 && f.len == 1);
            seen++;
        }
    }
    CHECK(seen == 2);
    size_t avail;
    fr_space(&r, &avail);
    CHECK(r.cap <= 64 * 1024); /* the big frame's memory was given back */
    fr_free(&r);
    free(stream);
}

static void test_frames_data_flow_keeps_buffer(void)
{
    /* MAX_CHUNK DATA frames in 64 KiB reads: the buffer grows once, not per frame, until released. */
    size_t one = FRAME_HEADER + MAX_CHUNK;
    uint8_t *stream = calloc(4, one);
    for (int i = 0; i < 4; i++) frame_header(stream + (size_t)i * one, OP_DATA, 3, MAX_CHUNK);
    struct frame_reader r;
    fr_init(&r, MAX_CHANNEL_FRAME);
    uint8_t *grown = NULL;
    int seen = 0, moved = 0;
    for (size_t off = 0; off < 4 * one;) {
        size_t avail;
        uint8_t *dst = fr_space(&r, &avail);
        CHECK(dst != NULL && avail > 0);
        if (r.cap > 64 * 1024) {
            if (grown && grown != r.buf) moved++;
            grown = r.buf;
        }
        size_t k = MIN(MIN(4 * one - off, avail), (size_t)65536);
        memcpy(dst, stream + off, k);
        fr_commit(&r, k);
        off += k;
        struct frame f;
        while (fr_next(&r, &f) == 1) CHECK(f.op == OP_DATA && f.id == 3 && f.len == MAX_CHUNK && ++seen);
    }
    size_t avail;
    fr_space(&r, &avail); /* between frames, as after each one: the room is kept */
    CHECK(seen == 4 && moved == 0 && fr_spare(&r));
    fr_release(&r);
    CHECK(!fr_spare(&r) && r.cap <= 64 * 1024);
    fr_free(&r);
    free(stream);
}

/* ---------------------------------------------------------------- JSON */

static int parse(const char *text, jv **root, json_doc *doc, char *copy, size_t cap)
{
    size_t n = strlen(text);
    if (n >= cap) return -2;
    memcpy(copy, text, n + 1);
    json_doc_init(doc);
    return json_parse(doc, copy, n, root);
}

static bool accepts(const char *text)
{
    char copy[4096];
    json_doc doc;
    jv *root;
    int r = parse(text, &root, &doc, copy, sizeof copy);
    json_doc_free(&doc);
    return r == 0;
}

static void test_json_accepts_and_refuses(void)
{
    CHECK(accepts("{\"t\":\"call\",\"id\":1,\"m\":\"fs.stat\",\"p\":{\"path\":\"/x\"}}"));
    CHECK(accepts(" [1, -0, 0.5e-3, 1E+2, true, false, null, \"\", {}] "));
    CHECK(accepts("\"\\u00e9\\ud83e\\udd80\\n\""));
    const char *refused[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN", "Infinity",
        "tru", "nul", "{'a':1}", "{\"a\" 1}", "[1 2]", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"tab\there\"",
        "\"unterminated", "{\"a\":1}{", "[1]]", "{\"a\":1,\"a\":2}", "/* no */ 1", "1 // no",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        if (accepts(refused[i])) fprintf(stderr, "accepted: %s\n", refused[i]);
        CHECK(!accepts(refused[i]));
    }
}

static void test_json_bad_utf8(void)
{
    const char *bad[] = {
        "\"\x80\"",             /* a lone continuation byte */
        "\"\xC0\xAF\"",         /* overlong '/' */
        "\"\xE0\x80\xAF\"",     /* overlong, 3 bytes */
        "\"\xED\xA0\x80\"",     /* an encoded surrogate */
        "\"\xF4\x90\x80\x80\"", /* past U+10FFFF */
        "\"\xF8\x88\x80\x80\x80\"",
        "\"\xE2\x82\"",         /* truncated */
        "{\"\xFF\":1}",         /* in a key */
        "[\xC3\xA9]",           /* outside a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK(!accepts(bad[i]));
    CHECK(accepts("\"h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\xA6\x80\""));
}

static void test_json_values(void)
{
    char copy[512];
    json_doc doc;
    jv *root;
    CHECK(parse("{\"i\":9007199254740993,\"neg\":-9223372036854775808,\"over\":9223372036854775808,\"frac\":1.5,\"exp\":1e2,"
                "\"huge\":1e999,\"s\":\"a\\u0000b\",\"lone\":\"\\ud800x\",\"pair\":\"\\ud83e\\udd80\"}",
                &root, &doc, copy, sizeof copy) == 0);
    const jv *v = jv_get(root, "i");
    CHECK(v && v->is_int && v->i == 9007199254740993LL);
    v = jv_get(root, "neg");
    CHECK(v && v->is_int && v->i == INT64_MIN);
    CHECK(!jv_get(root, "over")->is_int);
    CHECK(!jv_get(root, "frac")->is_int);
    CHECK(!jv_get(root, "exp")->is_int);
    CHECK(!jv_get(root, "huge")->is_int);
    /* Every number also as a double (times in seconds take fractions); out of range is infinite. */
    CHECK(jv_get(root, "frac")->d == 1.5);
    CHECK(jv_get(root, "exp")->d == 100.0);
    CHECK(jv_get(root, "neg")->d == -9223372036854775808.0);
    CHECK(jv_get(root, "huge")->d > 1e308);
    v = jv_get(root, "s");
    CHECK(v && v->len == 3 && memcmp(v->s, "a\0b", 3) == 0);
    v = jv_get(root, "lone");
    CHECK(v && v->len == 4 && memcmp(v->s, "\xEF\xBF\xBDx", 4) == 0);
    v = jv_get(root, "pair");
    CHECK(v && v->len == 4 && memcmp(v->s, "\xF0\x9F\xA6\x80", 4) == 0);
    CHECK(jv_get(root, "missing") == NULL);
    json_doc_free(&doc);
}

static void test_json_limits(void)
{
    /* Nesting: 31 levels parse, 33 do not. */
    char deep[128];
    for (int depth = 31; depth <= 33; depth += 2) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        deep[2 * depth] = 0;
        CHECK(accepts(deep) == (depth <= JSON_MAX_DEPTH));
    }
    /* A million-element array passes no node cap; it is refused, not allocated. */
    size_t n = 1000000;
    char *big = malloc(2 * n + 2);
    big[0] = '[';
    for (size_t i = 0; i < n; i++) big[1 + 2 * i] = '0', big[2 + 2 * i] = ',';
    big[2 * n] = ']';
    json_doc doc;
    json_doc_init(&doc);
    jv *root;
    CHECK(json_parse(&doc, big, 2 * n + 1, &root) == -1 && strcmp(doc.error, "too many values") == 0);
    json_doc_free(&doc);
    free(big);
    /* Duplicate keys in a large object are found too. */
    char obj[4096] = "{";
    for (int i = 0; i < 100; i++) sprintf(obj + strlen(obj), "\"k%d\":1,", i);
    strcat(obj, "\"k42\":2}");
    CHECK(!accepts(obj));
}

static void test_json_writer(void)
{
    jw w;
    jw_init(&w, 0);
    jw_obj(&w);
    jw_key(&w, "name");
    jw_str(&w, "bad\xFF\xC0 \"q\" \\ \x01\n\xE2\x9C\x93", 17);
    jw_key(&w, "list");
    jw_arr(&w);
    jw_int(&w, -5);
    jw_double(&w, 1.5);
    jw_double(&w, 1.0 / 0.0);
    jw_bool(&w, true);
    jw_null(&w);
    jw_arr(&w);
    jw_arr_end(&w);
    jw_arr_end(&w);
    jw_obj_end(&w);
    CHECK(!w.failed);
    const char *want = "{\"name\":\"bad\xEF\xBF\xBD\xEF\xBF\xBD \\\"q\\\" \\\\ \\u0001\\n\xE2\x9C\x93\",\"list\":[-5,1.5,null,true,null,[]]}";
    CHECK(w.out.len == strlen(want) && memcmp(w.out.p, want, w.out.len) == 0);
    /* Whatever it wrote, the reader takes back. */
    char *copy = malloc(w.out.len + 1);
    memcpy(copy, w.out.p, w.out.len);
    json_doc doc;
    json_doc_init(&doc);
    jv *root;
    CHECK(json_parse(&doc, copy, w.out.len, &root) == 0);
    json_doc_free(&doc);
    free(copy);
    jw_free(&w);
    /* A limit makes it fail rather than grow. */
    jw_init(&w, 8);
    jw_cstr(&w, "longer than eight");
    CHECK(w.failed);
    jw_free(&w);
    CHECK(utf8_prefix("a\xE2\x9C\x93", 4, 2) == 1);
    CHECK(utf8_prefix("abc", 3, 5) == 3);
}

/* ---------------------------------------------------------------- paths */

static void test_paths(void)
{
    char out[PATH_BUF];
    struct {
        const char *in, *want;
    } cases[] = {
        {"x", "/home/sandbox/x"},      {"/etc/passwd", "/etc/passwd"}, {"../../etc/x", "/etc/x"},
        {"../../../../..", "/"},    {".", "/home/sandbox"},            {"a//b/./c/../d/", "/home/sandbox/a/b/d"},
        {"/../x", "/x"},            {"/", "/"},                     {"..a/b..", "/home/sandbox/..a/b.."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(path_at(out, sizeof out, cases[i].in) == 0);
        CHECK_STR(out, cases[i].want);
    }
    char small[8];
    CHECK(path_at(small, sizeof small, "too-long-for-it") == -1);
    char dir[PATH_BUF];
    const char *base;
    path_split("/home/sandbox/f.txt", dir, sizeof dir, &base);
    CHECK_STR(dir, "/home/sandbox");
    CHECK_STR(base, "f.txt");
    path_split("/f", dir, sizeof dir, &base);
    CHECK_STR(dir, "/");
    CHECK_STR(base, "f");
}

int check_failures, check_count;

int main(void)
{
    test_frames_split_across_reads();
    test_frames_refused();
    test_frames_large_message();
    test_frames_data_flow_keeps_buffer();
    test_json_accepts_and_refuses();
    test_json_bad_utf8();
    test_json_values();
    test_json_limits();
    test_json_writer();
    tar_tests();
    test_paths();
    printf("unit: %d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}
