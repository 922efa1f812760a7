/*
 * A small strict JSON (RFC 8259) reader and writer. The reader decodes strings in place in
 * the caller's buffer and takes its nodes from an arena with a hard cap, so a hostile or
 * broken message costs bounded memory and stack; the writer always emits valid UTF-8.
 */
#ifndef SBX_JSON_H
#define SBX_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    uint8_t type;
    bool b;
    /* J_NUM: the literal is an integer (no fraction or exponent) that fits in int64. */
    bool is_int;
    int64_t i;
    /* J_NUM: the value as a double (NaN for a literal longer than 63 characters). */
    double d;
    /* J_STR: decoded UTF-8, NUL-terminated, may itself contain NUL (check `len`). */
    const char *s;
    /* J_STR: bytes; J_ARR/J_OBJ: members. */
    size_t len;
    /* Set on members of an object. */
    const char *key;
    size_t key_len;
    struct jv *first, *next;
} jv;

struct jarena;

typedef struct {
    struct jarena *arena;
    size_t nodes, max_nodes;
    int max_depth;
    /* After a failed parse: what and where. */
    const char *error;
    size_t error_at;
} json_doc;

/* Limits of every document the supervisor reads. */
#define JSON_MAX_DEPTH 32
#define JSON_MAX_NODES 300000

void json_doc_init(json_doc *doc);
/* Parses `text` (modified in place). 0 and *root set, or -1 with doc->error. */
int json_parse(json_doc *doc, char *text, size_t len, jv **root);
void json_doc_free(json_doc *doc);

/* The member `key` of an object, or NULL. */
const jv *jv_get(const jv *obj, const char *key);

/* Writer: appends to `out`; any failure (the buffer's limit, nesting) sets `failed`. */
typedef struct {
    buf_t out;
    uint64_t comma; /* bit d: the container at depth d already holds a value */
    int depth;
    bool after_key;
    bool failed;
} jw;

void jw_init(jw *w, size_t limit);
void jw_free(jw *w);
void jw_obj(jw *w);
void jw_obj_end(jw *w);
void jw_arr(jw *w);
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *key);
void jw_key_n(jw *w, const char *key, size_t n);
void jw_str(jw *w, const char *s, size_t n);
void jw_cstr(jw *w, const char *s);
void jw_int(jw *w, int64_t v);
void jw_double(jw *w, double v);
void jw_bool(jw *w, bool v);
void jw_null(jw *w);

/* Appends `s` as a JSON string body (no quotes), replacing invalid UTF-8 with U+FFFD. */
int json_escape(buf_t *out, const char *s, size_t n);
/* Length of the longest prefix of `s` (at most `max` bytes) that does not split a UTF-8 sequence. */
size_t utf8_prefix(const char *s, size_t n, size_t max);

#endif
