#include "path.h"

#include <string.h>

/* Appends the components of `p` to the normalised absolute path in out[0..*len). */
static int push(char *out, size_t cap, size_t *len, const char *p)
{
    while (*p) {
        while (*p == '/') p++;
        const char *c = p;
        while (*p && *p != '/') p++;
        size_t n = (size_t)(p - c);
        if (n == 0 || (n == 1 && c[0] == '.')) continue;
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            while (*len > 0 && out[*len - 1] != '/') (*len)--;
            if (*len > 0) (*len)--;
            continue;
        }
        if (*len + 1 + n + 1 > cap) return -1;
        out[(*len)++] = '/';
        memcpy(out + *len, c, n);
        *len += n;
    }
    return 0;
}

int path_resolve(char *out, size_t cap, const char *base, const char *p)
{
    if (cap < 2) return -1;
    size_t len = 0;
    if (p[0] != '/' && push(out, cap, &len, base) < 0) return -1;
    if (push(out, cap, &len, p) < 0) return -1;
    if (len == 0) out[len++] = '/';
    out[len] = 0;
    return 0;
}

int path_at(char *out, size_t cap, const char *p) { return path_resolve(out, cap, HOME_DIR, p); }

void path_split(const char *path, char *dir, size_t dir_cap, const char **base)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n == 0) n = 1; /* "/x" lives in "/" */
    if (n >= dir_cap) n = dir_cap - 1;
    memcpy(dir, path, n);
    dir[n] = 0;
    *base = slash ? slash + 1 : path;
}
