#include "wire.h"

#include <string.h>

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int b64_decode(const char *in, unsigned char *out, size_t cap, size_t *outlen)
{
    size_t len = strlen(in), n = 0;
    if (len % 4 != 0) return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0) return -1; /* data after padding */
            v[k] = b64_value(c);
            if (v[k] < 0) return -1;
        }
        unsigned bits = ((unsigned)v[0] << 18) | ((unsigned)v[1] << 12) | ((unsigned)v[2] << 6) | (unsigned)v[3];
        unsigned char bytes[3] = { (unsigned char)(bits >> 16), (unsigned char)(bits >> 8), (unsigned char)bits };
        size_t take = 3 - (size_t)pad;
        if (n + take > cap) return -1;
        memcpy(out + n, bytes, take);
        n += take;
    }
    *outlen = n;
    return 0;
}

/* How long the header that starts with these two bytes is. */
static size_t header_length(const unsigned char *h)
{
    size_t len = 2, n7 = h[1] & 0x7f;
    if (n7 == 126) len += 2;
    if (n7 == 127) len += 8;
    if (h[1] & 0x80) len += 4;
    return len;
}

static int header_done(struct ws_tracker *t)
{
    const unsigned char *h = t->head;
    int opcode = h[0] & 0x0f;
    uint64_t n = h[1] & 0x7f;
    if ((opcode >= 3 && opcode <= 7) || opcode >= 11) return -1;
    if (n == 126) n = ((uint64_t)h[2] << 8) | h[3];
    else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | h[2 + i];
        if (n >> 63) return -1;
    }
    if (opcode >= 8 && (n > 125 || !(h[0] & 0x80))) return -1;
    t->opcode = opcode;
    t->left = n;
    t->have = 0;
    t->in_payload = 1;
    if (n == 0) {
        t->in_payload = 0;
        if (opcode == 8) t->saw_close = 1;
    }
    return 0;
}

int ws_track(struct ws_tracker *t, const unsigned char *data, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (t->in_payload) {
            uint64_t take = n - i < t->left ? n - i : t->left;
            t->left -= take;
            i += (size_t)take;
            if (t->left == 0) {
                t->in_payload = 0;
                if (t->opcode == 8) t->saw_close = 1;
            }
            continue;
        }
        t->head[t->have++] = data[i++];
        if (t->have >= 2 && t->have == header_length(t->head) && header_done(t) < 0) return -1;
    }
    return 0;
}

void ws_skip(struct ws_tracker *t, size_t n)
{
    if (!t->in_payload) return;
    t->left -= n < t->left ? n : t->left;
    if (t->left == 0) {
        t->in_payload = 0;
        if (t->opcode == 8) t->saw_close = 1;
    }
}

int ws_at_boundary(const struct ws_tracker *t)
{
    return !t->in_payload && t->have == 0;
}

static size_t frame(unsigned char *out, size_t cap, unsigned char first, const unsigned char *payload, size_t n)
{
    size_t head = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
    if (head + n > cap) return 0;
    out[0] = first;
    if (n < 126) out[1] = (unsigned char)n;
    else if (n <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(n >> 8);
        out[3] = (unsigned char)n;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    memcpy(out + head, payload, n);
    return head + n;
}

size_t ws_text_frame(unsigned char *out, size_t cap, const char *text)
{
    return frame(out, cap, 0x81, (const unsigned char *)text, strlen(text));
}

size_t ws_close_frame(unsigned char *out, size_t cap, unsigned code, const char *reason)
{
    unsigned char payload[125];
    size_t n = strlen(reason);
    if (n > 123) {
        n = 123;
        while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80) n--; /* not inside a UTF-8 sequence */
    }
    payload[0] = (unsigned char)(code >> 8);
    payload[1] = (unsigned char)code;
    memcpy(payload + 2, reason, n);
    return frame(out, cap, 0x88, payload, n + 2);
}
