/*
 * sbx-idmap: what the daemon runs (as root, on the host) to give a sandbox booted from an image
 * its own view of the image's files:
 *
 *   sbx-idmap [--ro] BASE COUNT SOURCE TARGET [--overlay UPPER WORK MERGED]
 *
 * mounts at TARGET (an existing empty directory) a copy of the mount at SOURCE in which a file
 * owned by uid (gid) N on disk is owned by host uid BASE+N for N below COUNT (an idmapped mount,
 * mount_setattr(2)): the sandbox's user namespace maps the same block, so inside the owners are
 * the image's own (root is 0, the user 1000). Owners outside the block show as the overflow uid,
 * and nothing can be written with them. The copy is nosuid and nodev, and read-only with --ro.
 * With --overlay it then mounts at MERGED an overlay with TARGET as its lower layer (a snapshot
 * root's private writable layer: one exec instead of two), nosuid, nodev, and none of overlayfs's
 * features that trust xattrs a hostile lower layer could forge: redirect_dir=nofollow (with "off",
 * a kernel built with redirect_always_follow still follows a forged redirect), metacopy and index off.
 * Any step failing ends it with status 1 and a line on stderr, nothing left mounted.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mount.h>

#include "userns.h"

static unsigned long number(const char *what, const char *s, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || n > max) {
        fprintf(stderr, "sbx-idmap: %s: not a number up to %lu: '%s'\n", what, max, s);
        exit(1);
    }
    return n;
}

int main(int argc, char **argv)
{
    int i = 1;
    bool ro = false;
    if (i < argc && strcmp(argv[i], "--ro") == 0) {
        ro = true;
        i++;
    }
    const char *upper = NULL, *work = NULL, *merged = NULL;
    if (argc - i == 8 && strcmp(argv[i + 4], "--overlay") == 0) {
        upper = argv[i + 5];
        work = argv[i + 6];
        merged = argv[i + 7];
        argc -= 4;
    }
    if (argc - i != 4 || argv[i + 2][0] != '/' || argv[i + 3][0] != '/' || (upper && (upper[0] != '/' || work[0] != '/' || merged[0] != '/' || strchr(upper, ',') || strchr(work, ',') || strchr(argv[i + 3], ',') || strchr(argv[i + 3], ':')))) {
        fprintf(stderr, "usage: sbx-idmap [--ro] BASE COUNT /SOURCE /TARGET [--overlay /UPPER /WORK /MERGED] (paths without ',' or ':')\n");
        return 1;
    }
    unsigned long base = number("BASE", argv[i], 0xfffffffful), count = number("COUNT", argv[i + 1], 0xfffffffful);
    if (count == 0 || base == 0 || base + count > 0xfffffffful) {
        fprintf(stderr, "sbx-idmap: the block %lu+%lu must be non-empty, above 0 and within 32 bits\n", base, count);
        return 1;
    }
    char why[256];
    int ns = make_userns(base, count, 0, why, sizeof why);
    if (ns < 0) {
        fprintf(stderr, "sbx-idmap: %s\n", why);
        return 1;
    }
    int tree = open_tree(AT_FDCWD, argv[i + 2], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
        fprintf(stderr, "sbx-idmap: open_tree %s: %s\n", argv[i + 2], strerror(errno));
        return 1;
    }
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0), .userns_fd = (unsigned long)ns};
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
        fprintf(stderr, "sbx-idmap: idmapping %s: %s\n", argv[i + 2], strerror(errno));
        return 1;
    }
    if (move_mount(tree, "", AT_FDCWD, argv[i + 3], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        fprintf(stderr, "sbx-idmap: mounting at %s: %s\n", argv[i + 3], strerror(errno));
        return 1;
    }
    if (upper) {
        char opts[3 * PATH_MAX + 128];
        int n = snprintf(opts, sizeof opts, "redirect_dir=nofollow,metacopy=off,index=off,xino=off,lowerdir=%s,upperdir=%s,workdir=%s", argv[i + 3], upper, work);
        if (n < 0 || (size_t)n >= sizeof opts || mount("overlay", merged, "overlay", MS_NOSUID | MS_NODEV, opts) < 0) {
            fprintf(stderr, "sbx-idmap: mounting the overlay at %s: %s\n", merged, n < 0 || (size_t)n >= sizeof opts ? "paths too long" : strerror(errno));
            umount2(argv[i + 3], MNT_DETACH);
            return 1;
        }
    }
    return 0;
}
