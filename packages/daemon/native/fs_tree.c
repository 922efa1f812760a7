/*
 * The calls that change the tree: mkdir, remove, rename, chmod, symlink, link, makeTempDir
 * and makeTempFile, with Node's semantics (mkdir -p, rm -r that never follows a symlink) and
 * messages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "fsutil.h"
#include "handlers.h"
#include "path.h"
#include "util.h"


static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p: existing directories are fine, anything else in the way is EEXIST. */
static int mkdir_p(char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0) return 0;
    if (errno == EEXIST) return is_dir(path) ? 0 : (errno = EEXIST, -1);
    if (errno != ENOENT) return -1;
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) return -1;
    *slash = 0;
    int r = mkdir_p(path, mode);
    *slash = '/';
    if (r < 0) return -1;
    if (mkdir(path, mode) == 0) return 0;
    if (errno == EEXIST) return is_dir(path) ? 0 : (errno = EEXIST, -1);
    return -1;
}

void h_mkdir(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    bool recursive, has_mode;
    int64_t mode = 0777;
    if (param_path(p, "path", true, path, &e) < 0 || param_bool(p, "recursive", false, &recursive, &e) < 0 ||
        param_int(p, "mode", 0, 07777, &has_mode, &mode, &e) < 0)
        goto fail;
    char work[PATH_BUF];
    memcpy(work, path, strlen(path) + 1);
    if ((recursive ? mkdir_p(work, (mode_t)mode) : mkdir(path, (mode_t)mode)) < 0) {
        err_fs(&e, errno, "mkdir", path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

int rm_tree(int parent, const char *name, char *path, size_t len, int depth, struct err *e)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP) {
            if (unlinkat(parent, name, 0) == 0) return 0;
            err_fs(e, errno, "unlink", path);
        } else {
            err_fs(e, errno, "rmdir", path);
        }
        return -1;
    }
    if (depth > 2048) {
        close(fd);
        err_fs(e, ELOOP, "rm", path);
        return -1;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        err_fs(e, errno, "rm", path);
        close(fd);
        return -1;
    }
    for (int pass = 0; pass < 8; pass++) {
        struct dirent *de;
        bool removed = false;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            size_t n = strlen(de->d_name);
            bool fits = len + 1 + n < PATH_BUF;
            if (fits) {
                path[len] = '/';
                memcpy(path + len + 1, de->d_name, n + 1);
            }
            int r;
            if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
                r = rm_tree(dirfd(d), de->d_name, path, fits ? len + 1 + n : len, depth + 1, e);
            } else if ((r = unlinkat(dirfd(d), de->d_name, 0)) < 0) {
                err_fs(e, errno, "unlink", path);
            }
            path[len] = 0;
            if (r < 0) {
                closedir(d);
                return -1;
            }
            removed = true;
        }
        if (!removed) break;
        rewinddir(d);
    }
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0) {
        err_fs(e, errno, "rmdir", path);
        return -1;
    }
    return 0;
}

void h_remove(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    bool recursive;
    struct stat st;
    if (param_path(p, "path", true, path, &e) < 0 || param_bool(p, "recursive", false, &recursive, &e) < 0) goto fail;
    if (lstat(path, &st) < 0) {
        err_fs(&e, errno, "lstat", path);
        goto fail;
    }
    if (S_ISDIR(st.st_mode) && recursive) {
        char work[PATH_BUF];
        size_t len = strlen(path);
        memcpy(work, path, len + 1);
        if (rm_tree(AT_FDCWD, path, work, len, 0, &e) < 0) goto fail;
    } else if (S_ISDIR(st.st_mode) ? rmdir(path) < 0 : unlink(path) < 0) {
        err_fs(&e, errno, S_ISDIR(st.st_mode) ? "rmdir" : "unlink", path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_rename(int64_t id, const jv *p)
{
    char from[PATH_BUF], to[PATH_BUF];
    struct err e;
    if (param_path(p, "from", true, from, &e) < 0 || param_path(p, "to", true, to, &e) < 0) goto fail;
    if (rename(from, to) < 0) {
        err_fs2(&e, errno, "rename", from, to);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_chmod(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    bool has_mode;
    int64_t mode = 0;
    if (param_path(p, "path", true, path, &e) < 0 || param_int(p, "mode", 0, 07777, &has_mode, &mode, &e) < 0) goto fail;
    if (!has_mode) {
        err_set(&e, "InvalidParams", 0, "params.mode: required");
        goto fail;
    }
    if (chmod(path, (mode_t)mode) < 0) {
        err_fs(&e, errno, "chmod", path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_symlink(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    const char *target;
    struct err e;
    if (param_str(p, "target", true, &target, &e) < 0 || param_path(p, "path", true, path, &e) < 0) goto fail;
    if (symlink(target, path) < 0) {
        err_fs2(&e, errno, "symlink", target, path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

void h_link(int64_t id, const jv *p)
{
    char target[PATH_BUF], path[PATH_BUF];
    struct err e;
    if (param_path(p, "target", true, target, &e) < 0 || param_path(p, "path", true, path, &e) < 0) goto fail;
    /* No AT_SYMLINK_FOLLOW: like link(2) and Deno, a symlink named as the target is linked itself. */
    if (linkat(AT_FDCWD, target, AT_FDCWD, path, 0) < 0) {
        err_fs2(&e, errno, "link", target, path);
        goto fail;
    }
    reply_null(id);
    return;
fail:
    reply_err(id, &e);
}

/* A new directory or empty file with a random name in `dir` (default /tmp), made exclusively. */
static void make_temp(int64_t id, const jv *p, bool dir_wanted)
{
    char dir[PATH_BUF], path[PATH_BUF];
    const char *prefix, *suffix, *syscall = dir_wanted ? "mkdir" : "open";
    struct err e;
    if (param_path(p, "dir", false, dir, &e) < 0 || param_str(p, "prefix", false, &prefix, &e) < 0 ||
        param_str(p, "suffix", false, &suffix, &e) < 0)
        goto fail;
    if (!dir[0]) strcpy(dir, "/tmp");
    if (!prefix) prefix = "";
    if (!suffix) suffix = "";
    if (strchr(prefix, '/') || strchr(suffix, '/')) {
        err_set(&e, "InvalidParams", 0, "params.prefix and params.suffix must not contain '/'");
        goto fail;
    }
    for (int attempt = 0; attempt < 16; attempt++) {
        char rnd[13];
        if (random_hex(rnd, 6) < 0) {
            err_fs(&e, errno, syscall, dir);
            goto fail;
        }
        /* The result must stay a valid protocol path (the kernel's limit is lower still). */
        int n = snprintf(path, sizeof path, "%s%s%s%s%s", dir, strcmp(dir, "/") ? "/" : "", prefix, rnd, suffix);
        if (n < 0 || n >= PATH_MAX) {
            err_fs(&e, ENAMETOOLONG, syscall, dir);
            goto fail;
        }
        int r = dir_wanted ? mkdir(path, 0700) : open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (r >= 0) {
            if (!dir_wanted) close(r);
            reply_string(id, path);
            return;
        }
        if (errno != EEXIST) {
            err_fs(&e, errno, syscall, path);
            goto fail;
        }
    }
    err_set(&e, "FileSystem", EEXIST, "could not create a unique %s in %s", dir_wanted ? "directory" : "file", dir);
fail:
    reply_err(id, &e);
}

void h_make_temp_dir(int64_t id, const jv *p) { make_temp(id, p, true); }
void h_make_temp_file(int64_t id, const jv *p) { make_temp(id, p, false); }
