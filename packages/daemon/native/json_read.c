#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_NODES 256

struct jarena {
    struct jarena *next;
    size_t used;
    jv nodes[BLOCK_NODES];
};

typedef struct {
    json_doc *doc;
    char *p, *end, *start;
} parser;

void json_doc_init(json_doc *doc)
{
    memset(doc, 0, sizeof *doc);
    doc->max_nodes = JSON_MAX_NODES;
    doc->max_depth = JSON_MAX_DEPTH;
}

void json_doc_free(json_doc *doc)
{
    struct jarena *a = doc->arena;
    while (a) {
        struct jarena *next = a->next;
        free(a);
        a = next;
    }
    doc->arena = NULL;
    doc->nodes = 0;
}

static int fail(parser *ps, const char *why)
{
    if (!ps->doc->error) {
        ps->doc->error = why;
        ps->doc->error_at = (size_t)(ps->p - ps->start);
    }
    return -1;
}

static jv *new_node(parser *ps, uint8_t type)
{
    json_doc *doc = ps->doc;
    if (doc->nodes >= doc->max_nodes) {
        fail(ps, "too many values");
        return NULL;
    }
    if (!doc->arena || doc->arena->used == BLOCK_NODES) {
        struct jarena *a = malloc(sizeof *a);
        if (!a) {
            fail(ps, "out of memory");
            return NULL;
        }
        a->next = doc->arena;
        a->used = 0;
        doc->arena = a;
    }
    jv *v = &doc->arena->nodes[doc->arena->used++];
    memset(v, 0, sizeof *v);
    v->type = type;
    doc->nodes++;
    return v;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xC0 | (cp >> 6));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | (cp >> 12));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | (cp >> 18));
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    return d;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else return 0;
    if ((size_t)(end - s) < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* Decodes the string at ps->p (just past the opening quote) in place. */
static int parse_string(parser *ps, const char **out, size_t *out_len)
{
    char *d = ps->p;
    const char *begin = d;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            *out = begin;
            *out_len = (size_t)(d - begin);
            *d = 0; /* at or before the closing quote, which is consumed */
            ps->p++;
            return 0;
        }
        if (c < 0x20) return fail(ps, "control character in string");
        if (c == '\\') {
            if (ps->end - ps->p < 2) return fail(ps, "unterminated escape");
            char e = ps->p[1];
            ps->p += 2;
            switch (e) {
            case '"': *d++ = '"'; break;
            case '\\': *d++ = '\\'; break;
            case '/': *d++ = '/'; break;
            case 'b': *d++ = '\b'; break;
            case 'f': *d++ = '\f'; break;
            case 'n': *d++ = '\n'; break;
            case 'r': *d++ = '\r'; break;
            case 't': *d++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0) return fail(ps, "bad \\u escape");
                ps->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u' && hex4(ps->p + 2, &lo) == 0 && lo >= 0xDC00 &&
                        lo <= 0xDFFF) {
                        ps->p += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        cp = 0xFFFD; /* a lone surrogate has no UTF-8 form; Node's encoder does the same */
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                }
                d = put_utf8(d, cp);
                break;
            }
            default:
                return fail(ps, "unknown escape");
            }
            continue;
        }
        size_t n = utf8_seq((const unsigned char *)ps->p, (const unsigned char *)ps->end);
        if (n == 0) return fail(ps, "invalid UTF-8 in string");
        memmove(d, ps->p, n);
        d += n;
        ps->p += n;
    }
    return fail(ps, "unterminated string");
}

static int parse_number(parser *ps, jv *v)
{
    const char *s = ps->p;
    bool neg = false, integer = true, overflow = false;
    int64_t acc = 0;
    if (ps->p < ps->end && *ps->p == '-') neg = true, ps->p++;
    if (ps->p >= ps->end) return fail(ps, "bad number");
    if (*ps->p == '0') {
        ps->p++;
    } else if (*ps->p >= '1' && *ps->p <= '9') {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            int digit = *ps->p - '0';
            if (!overflow) {
                if (neg ? acc < (INT64_MIN + digit) / 10 : acc > (INT64_MAX - digit) / 10) overflow = true;
                else acc = acc * 10 + (neg ? -digit : digit);
            }
            ps->p++;
        }
    } else {
        return fail(ps, "bad number");
    }
    if (ps->p < ps->end && *ps->p == '.') {
        integer = false;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "bad fraction");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integer = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "bad exponent");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    v->is_int = integer && !overflow;
    v->i = v->is_int ? acc : 0;
    /* The value as a double too, for the few params that take fractions (times in seconds). */
    char digits[64];
    size_t n = (size_t)(ps->p - s);
    if (n < sizeof digits) {
        memcpy(digits, s, n);
        digits[n] = 0;
        v->d = strtod(digits, NULL);
    } else {
        v->d = NAN;
    }
    return 0;
}

static int cmp_keys(const void *a, const void *b)
{
    const jv *x = *(const jv *const *)a, *y = *(const jv *const *)b;
    size_t n = MIN(x->key_len, y->key_len);
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int check_duplicates(parser *ps, jv *obj)
{
    if (obj->len < 2) return 0;
    if (obj->len <= 16) {
        for (jv *a = obj->first; a; a = a->next)
            for (jv *b = a->next; b; b = b->next)
                if (a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0) return fail(ps, "duplicate key");
        return 0;
    }
    const jv **all = malloc(obj->len * sizeof *all);
    if (!all) return fail(ps, "out of memory");
    size_t n = 0;
    for (jv *a = obj->first; a; a = a->next) all[n++] = a;
    qsort(all, n, sizeof *all, cmp_keys);
    int r = 0;
    for (size_t i = 1; i < n && r == 0; i++)
        if (cmp_keys(&all[i - 1], &all[i]) == 0) r = fail(ps, "duplicate key");
    free(all);
    return r;
}

static int parse_value(parser *ps, jv **out, int depth);

static int parse_container(parser *ps, jv *v, int depth, char close)
{
    if (depth >= ps->doc->max_depth) return fail(ps, "nesting too deep");
    jv **tail = &v->first;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(ps);
        if (close == '}') {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a key");
            ps->p++;
            if (parse_string(ps, &key, &key_len) < 0) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        jv *member;
        if (parse_value(ps, &member, depth + 1) < 0) return -1;
        member->key = key;
        member->key_len = key_len;
        *tail = member;
        tail = &member->next;
        v->len++;
        skip_ws(ps);
        if (ps->p >= ps->end) return fail(ps, "unterminated container");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return close == '}' ? check_duplicates(ps, v) : 0;
        }
        return fail(ps, "expected ',' or the end of the container");
    }
}

static int literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return fail(ps, "unexpected character");
    ps->p += n;
    return 0;
}

static int parse_value(parser *ps, jv **out, int depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end");
    jv *v;
    char c = *ps->p;
    switch (c) {
    case '{':
    case '[':
        if (!(v = new_node(ps, c == '{' ? J_OBJ : J_ARR))) return -1;
        ps->p++;
        if (parse_container(ps, v, depth, c == '{' ? '}' : ']') < 0) return -1;
        break;
    case '"':
        if (!(v = new_node(ps, J_STR))) return -1;
        ps->p++;
        if (parse_string(ps, &v->s, &v->len) < 0) return -1;
        break;
    case 't':
    case 'f':
        if (!(v = new_node(ps, J_BOOL))) return -1;
        v->b = c == 't';
        if (literal(ps, v->b ? "true" : "false") < 0) return -1;
        break;
    case 'n':
        if (!(v = new_node(ps, J_NULL)) || literal(ps, "null") < 0) return -1;
        break;
    default:
        if (c != '-' && (c < '0' || c > '9')) return fail(ps, "unexpected character");
        if (!(v = new_node(ps, J_NUM)) || parse_number(ps, v) < 0) return -1;
    }
    *out = v;
    return 0;
}

int json_parse(json_doc *doc, char *text, size_t len, jv **root)
{
    parser ps = {doc, text, text + len, text};
    doc->error = NULL;
    if (parse_value(&ps, root, 0) < 0) return -1;
    skip_ws(&ps);
    if (ps.p != ps.end) return fail(&ps, "trailing characters");
    return 0;
}

const jv *jv_get(const jv *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ) return NULL;
    size_t n = strlen(key);
    for (const jv *m = obj->first; m; m = m->next)
        if (m->key_len == n && memcmp(m->key, key, n) == 0) return m;
    return NULL;
}
