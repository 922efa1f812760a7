#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void jw_init(jw *w, size_t limit)
{
    memset(w, 0, sizeof *w);
    w->out.limit = limit;
}

void jw_free(jw *w) { buf_free(&w->out); }

static void put(jw *w, const void *p, size_t n)
{
    if (!w->failed && buf_put(&w->out, p, n) < 0) w->failed = true;
}

static void before_value(jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0) {
        uint64_t bit = 1ull << (w->depth - 1);
        if (w->comma & bit) put(w, ",", 1);
        w->comma |= bit;
    }
}

static void open_container(jw *w, char c)
{
    before_value(w);
    if (w->depth >= 63) {
        w->failed = true;
        return;
    }
    w->depth++;
    w->comma &= ~(1ull << (w->depth - 1));
    put(w, &c, 1);
}

static void close_container(jw *w, char c)
{
    if (w->depth == 0 || w->after_key) {
        w->failed = true;
        return;
    }
    w->depth--;
    put(w, &c, 1);
}

void jw_obj(jw *w) { open_container(w, '{'); }
void jw_obj_end(jw *w) { close_container(w, '}'); }
void jw_arr(jw *w) { open_container(w, '['); }
void jw_arr_end(jw *w) { close_container(w, ']'); }

size_t utf8_prefix(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t cut = max;
    /* Step back over continuation bytes so the cut falls between sequences. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    return cut;
}

/* Length of the valid UTF-8 sequence at s, or 0 (same rules as the reader). */
static size_t seq_len(const unsigned char *s, size_t left)
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
    if (left < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

int json_escape(buf_t *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            if (buf_put(out, e, 2) < 0) return -1;
            i++;
        } else if (c < 0x20) {
            char e[8];
            int len;
            switch (c) {
            case '\n': len = snprintf(e, sizeof e, "\\n"); break;
            case '\r': len = snprintf(e, sizeof e, "\\r"); break;
            case '\t': len = snprintf(e, sizeof e, "\\t"); break;
            default: len = snprintf(e, sizeof e, "\\u%04x", c);
            }
            if (buf_put(out, e, (size_t)len) < 0) return -1;
            i++;
        } else {
            size_t k = seq_len(s + i, n - i);
            if (k == 0) {
                /* Hostile file names are bytes, not text: each bad byte becomes U+FFFD. */
                if (buf_put(out, "\xEF\xBF\xBD", 3) < 0) return -1;
                i++;
            } else {
                if (buf_put(out, s + i, k) < 0) return -1;
                i += k;
            }
        }
    }
    return 0;
}

void jw_str(jw *w, const char *s, size_t n)
{
    before_value(w);
    put(w, "\"", 1);
    if (!w->failed && json_escape(&w->out, s, n) < 0) w->failed = true;
    put(w, "\"", 1);
}

void jw_cstr(jw *w, const char *s) { jw_str(w, s, strlen(s)); }

void jw_key_n(jw *w, const char *key, size_t n)
{
    if (w->after_key || w->depth == 0) {
        w->failed = true;
        return;
    }
    jw_str(w, key, n);
    put(w, ":", 1);
    w->after_key = true;
}

void jw_key(jw *w, const char *key) { jw_key_n(w, key, strlen(key)); }

void jw_int(jw *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    before_value(w);
    put(w, tmp, (size_t)n);
}

void jw_double(jw *w, double v)
{
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.17g", v);
    before_value(w);
    put(w, tmp, (size_t)n);
}

void jw_bool(jw *w, bool v)
{
    before_value(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(jw *w)
{
    before_value(w);
    put(w, "null", 4);
}
