#include "call.h"

#include <errno.h>
#include <string.h>

#include "chan.h"
#include "frame.h"
#include "handlers.h"
#include "path.h"
#include "util.h"

/* The daemon's liveness check while a call waits long: an answer proves the loop still turns. */
static void h_ping(int64_t id, const jv *p)
{
    (void)p;
    reply_null(id);
}

static const struct {
    const char *name;
    handler_fn *fn;
} METHODS[] = {
    {"process.spawn", h_spawn},     {"process.kill", h_kill},       {"fs.readFile", h_read_file},
    {"fs.writeFile", h_write_file}, {"fs.upload", h_upload},        {"fs.download", h_download},
    {"fs.stat", h_stat},            {"fs.lstat", h_lstat},          {"fs.readDir", h_read_dir},
    {"fs.mkdir", h_mkdir},          {"fs.remove", h_remove},        {"fs.rename", h_rename},
    {"fs.copyFile", h_copy_file},   {"fs.chmod", h_chmod},          {"fs.symlink", h_symlink},
    {"fs.readLink", h_read_link},   {"fs.realPath", h_real_path},   {"fs.makeTempDir", h_make_temp_dir},
    {"fs.makeTempFile", h_make_temp_file}, {"fs.link", h_link},     {"fs.truncate", h_truncate},
    {"fs.umask", h_umask},          {"fs.utime", h_utime},          {"fs.chown", h_chown},
    {"fs.open", h_open},            {"fs.fileRead", h_file_read},   {"fs.fileWrite", h_file_write},
    {"fs.fileSeek", h_file_seek},   {"fs.fileStat", h_file_stat},   {"fs.fileTruncate", h_file_truncate},
    {"fs.fileSync", h_file_sync},   {"fs.fileUtime", h_file_utime}, {"fs.fileLock", h_file_lock},
    {"fs.fileUnlock", h_file_unlock}, {"fs.fileClose", h_file_close},
    {"supervisor.ping", h_ping},
};

static bool is(const jv *v, const char *s) { return v && v->type == J_STR && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0; }

void call_dispatch(char *payload, size_t len)
{
    json_doc doc;
    json_doc_init(&doc);
    jv *root;
    if (json_parse(&doc, payload, len, &root) < 0) die("malformed call from the daemon: %s at %zu", doc.error, doc.error_at);
    const jv *id = jv_get(root, "id"), *m = jv_get(root, "m"), *p = jv_get(root, "p");
    if (!is(jv_get(root, "t"), "call") || !id || id->type != J_NUM || !id->is_int || id->i < 1) die("the daemon sent a message that is not a call");
    struct err e;
    if (!m || m->type != J_STR || !p || p->type != J_OBJ) {
        err_set(&e, "InvalidParams", 0, "a call needs a method name and a params object");
        reply_err(id->i, &e);
    } else {
        size_t i = 0;
        while (i < ARRAY_LEN(METHODS) && !is(m, METHODS[i].name)) i++;
        if (i < ARRAY_LEN(METHODS)) {
            METHODS[i].fn(id->i, p);
        } else {
            err_set(&e, "InvalidParams", 0, "the supervisor does not implement %.200s", m->s);
            reply_err(id->i, &e);
        }
    }
    json_doc_free(&doc);
}

int param_str(const jv *p, const char *key, bool required, const char **out, struct err *e)
{
    const jv *v = jv_get(p, key);
    *out = NULL;
    if (!v || v->type == J_NULL) {
        if (!required) return 0;
        err_set(e, "InvalidParams", 0, "params.%s: required", key);
        return -1;
    }
    if (v->type != J_STR || memchr(v->s, 0, v->len)) {
        err_set(e, "InvalidParams", 0, "params.%s: must be a string without NUL bytes", key);
        return -1;
    }
    *out = v->s;
    return 0;
}

int param_path(const jv *p, const char *key, bool required, char *out, struct err *e)
{
    const char *s;
    out[0] = 0;
    if (param_str(p, key, required, &s, e) < 0) return -1;
    if (!s) return 0;
    if (!s[0] || path_at(out, PATH_BUF, s) < 0) {
        err_set(e, "InvalidParams", 0, "params.%s: must be a non-empty path of at most 4096 characters", key);
        return -1;
    }
    return 0;
}

int param_bool(const jv *p, const char *key, bool dflt, bool *out, struct err *e)
{
    const jv *v = jv_get(p, key);
    *out = dflt;
    if (!v || v->type == J_NULL) return 0;
    if (v->type != J_BOOL) {
        err_set(e, "InvalidParams", 0, "params.%s: must be a boolean", key);
        return -1;
    }
    *out = v->b;
    return 0;
}

int param_int(const jv *p, const char *key, int64_t lo, int64_t hi, bool *present, int64_t *out, struct err *e)
{
    const jv *v = jv_get(p, key);
    *present = false;
    if (!v || v->type == J_NULL) return 0;
    if (v->type != J_NUM || !v->is_int || v->i < lo || v->i > hi) {
        err_set(e, "InvalidParams", 0, "params.%s: must be an integer from %lld to %lld", key, (long long)lo, (long long)hi);
        return -1;
    }
    *present = true;
    *out = v->i;
    return 0;
}

int param_double(const jv *p, const char *key, double lo, double hi, double *out, struct err *e)
{
    const jv *v = jv_get(p, key);
    if (!v || v->type != J_NUM || !(v->d >= lo && v->d <= hi)) {
        err_set(e, "InvalidParams", 0, "params.%s: must be a number from %g to %g", key, lo, hi);
        return -1;
    }
    *out = v->d;
    return 0;
}

int param_stream(const jv *p, const char *key, uint32_t *out, struct err *e)
{
    bool present;
    int64_t v = 0;
    if (param_int(p, key, 1, 0x7fffffff, &present, &v, e) < 0) return -1;
    *out = present ? (uint32_t)v : 0;
    return 0;
}

void reply_err(int64_t id, const struct err *e)
{
    jw w;
    jw_init(&w, 64 * 1024);
    jw_obj(&w);
    jw_key(&w, "t");
    jw_cstr(&w, "reply");
    jw_key(&w, "id");
    jw_int(&w, id);
    jw_key(&w, "ok");
    jw_bool(&w, false);
    jw_key(&w, "code");
    jw_cstr(&w, e->code ? e->code : "InternalError");
    jw_key(&w, "message");
    size_t n = strlen(e->msg);
    jw_str(&w, e->msg, utf8_prefix(e->msg, n, ERR_MSG_MAX));
    if (e->errno_name[0]) {
        jw_key(&w, "errno");
        jw_cstr(&w, e->errno_name);
    }
    jw_obj_end(&w);
    if (w.failed) die("cannot encode a reply");
    chan_msg(&w);
    jw_free(&w);
}

void reply_begin(jw *w, int64_t id)
{
    jw_init(w, MAX_CHANNEL_FRAME - 5);
    jw_obj(w);
    jw_key(w, "t");
    jw_cstr(w, "reply");
    jw_key(w, "id");
    jw_int(w, id);
    jw_key(w, "ok");
    jw_bool(w, true);
    jw_key(w, "v");
}

void reply_finish(jw *w, int64_t id)
{
    jw_obj_end(w);
    if (w->failed || w->depth != 0) {
        struct err e;
        err_set(&e, "InternalError", 0, "the result is too large to send");
        reply_err(id, &e);
    } else {
        chan_msg(w);
    }
    jw_free(w);
}

void reply_null(int64_t id)
{
    jw w;
    reply_begin(&w, id);
    jw_null(&w);
    reply_finish(&w, id);
}
