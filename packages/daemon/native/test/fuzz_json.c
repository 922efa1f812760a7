/* JSON fuzzing (see fuzz.c): the reader against mutated texts, the writer against raw bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz.h"
#include "json.h"

static void write_value(jw *w, const jv *v)
{
    switch (v->type) {
    case J_NULL: jw_null(w); break;
    case J_BOOL: jw_bool(w, v->b); break;
    case J_NUM: if (v->is_int) jw_int(w, v->i); else jw_double(w, 0.5); break;
    case J_STR: jw_str(w, v->s, v->len); break;
    case J_ARR:
        jw_arr(w);
        for (const jv *m = v->first; m; m = m->next) write_value(w, m);
        jw_arr_end(w);
        break;
    case J_OBJ:
        jw_obj(w);
        for (const jv *m = v->first; m; m = m->next) {
            jw_key_n(w, m->key, m->key_len);
            write_value(w, m);
        }
        jw_obj_end(w);
    }
}

static bool same(const jv *a, const jv *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case J_BOOL: return a->b == b->b;
    case J_NUM: return a->is_int == b->is_int && (!a->is_int || a->i == b->i);
    case J_STR: return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case J_ARR:
    case J_OBJ:
        if (a->len != b->len) return false;
        for (const jv *x = a->first, *y = b->first; x; x = x->next, y = y->next)
            if (!same(x, y) || x->key_len != y->key_len || (x->key_len && memcmp(x->key, y->key, x->key_len))) return false;
        return true;
    default: return true;
    }
}

static const char *JSON_SEEDS[] = {
    "{\"t\":\"call\",\"id\":12,\"m\":\"process.spawn\",\"p\":{\"cmd\":\"bash\",\"args\":[\"-c\",\"echo \\\"hi\\\"\\n\"],"
    "\"env\":{\"HOME\":\"/home/sandbox\",\"PATH\":\"/usr/bin:/bin\"},\"stdin\":null,\"stdout\":3,\"stderr\":4}}",
    "{\"t\":\"call\",\"id\":9007199254740991,\"m\":\"fs.writeFile\",\"p\":{\"path\":\"caf\\u00e9/\\ud83e\\udd80\",\"stream\":1,\"mode\":420,"
    "\"append\":false,\"createNew\":true}}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "[-0,1e999,-9223372036854775809,123456789012345678901234567890,0.000001,1E-7,true,false,null,\"\",{},[]]",
    "{\"a\":{\"b\":{\"c\":[\"\\u0000\",\"\\ud800\",\"\\udfff\",\"\\\\\\/\\b\\f\\n\\r\\t\"]}}}",
    "\"\xC3\xA9\xE2\x9C\x93\xF0\x9F\xA6\x80\"",
};

static void json_round(const uint8_t *text, size_t len)
{
    static char copy[16384];
    memcpy(copy, text, len);
    json_doc doc;
    json_doc_init(&doc);
    jv *root;
    if (json_parse(&doc, copy, len, &root) == 0) {
        jw w;
        jw_init(&w, 1 << 20);
        write_value(&w, root);
        CHECK(!w.failed);
        char *again = malloc(w.out.len + 1);
        memcpy(again, w.out.p, w.out.len);
        json_doc doc2;
        json_doc_init(&doc2);
        jv *root2;
        int ok = json_parse(&doc2, again, w.out.len, &root2);
        CHECK(ok == 0);
        if (ok == 0) CHECK(same(root, root2));
        json_doc_free(&doc2);
        free(again);
        jw_free(&w);
    } else {
        CHECK(doc.error != NULL && doc.error_at <= len);
    }
    json_doc_free(&doc);
}

void fuzz_json(double until)
{
    static uint8_t buf[8192];
    long rounds = 0;
    size_t seeds = sizeof JSON_SEEDS / sizeof *JSON_SEEDS;
    while (now() < until) {
        const char *seed = JSON_SEEDS[below(seeds)], *other = JSON_SEEDS[below(seeds)];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        for (size_t k = below(4); k > 0; k--) len = mutate(buf, len, sizeof buf, (const uint8_t *)other, strlen(other));
        json_round(buf, len);
        /* The writer's side: arbitrary bytes become a string that parses back to a fixed point. */
        size_t n = below(64);
        uint8_t raw[64];
        for (size_t i = 0; i < n; i++) raw[i] = below(3) ? (uint8_t)next() : INTERESTING[below(INTERESTING_LEN)];
        jw w;
        jw_init(&w, 0);
        jw_str(&w, (const char *)raw, n);
        char *copy = malloc(w.out.len + 1);
        memcpy(copy, w.out.p, w.out.len);
        json_doc doc;
        json_doc_init(&doc);
        jv *root;
        CHECK(json_parse(&doc, copy, w.out.len, &root) == 0 && root->type == J_STR);
        if (root && root->type == J_STR) {
            jw w2;
            jw_init(&w2, 0);
            jw_str(&w2, root->s, root->len);
            CHECK(w2.out.len == w.out.len && memcmp(w2.out.p, w.out.p, w.out.len) == 0);
            jw_free(&w2);
        }
        json_doc_free(&doc);
        free(copy);
        jw_free(&w);
        rounds++;
    }
    printf("fuzz: json %ld rounds\n", rounds);
}

