/*
 * A sandbox booted from an image gets its own view of the image's files (sbx-launch --root-view):
 * a copy of the image's mount at SOURCE, mounted at TARGET (an existing empty directory), in which
 * a file owned by uid (gid) N on disk is owned by host uid BASE+N for N below the block's size (an
 * idmapped mount, mount_setattr(2), with the sandbox's own user namespace as the mapping). Inside,
 * that namespace maps the same block, so the owners are the image's own (root is 0, the user
 * 1000); owners outside the block show as the overflow uid, and nothing can be written with them.
 * The copy is nosuid and nodev, and read-only for a snapshot.
 *
 * A snapshot root then gets at MERGED an overlay with TARGET as its lower layer (its private
 * writable layer), nosuid, nodev, and none of overlayfs's features that trust xattrs a hostile
 * lower layer could forge: redirect_dir=nofollow (with "off", a kernel built with
 * redirect_always_follow still follows a forged redirect), metacopy and index off.
 *
 * Any step failing leaves nothing mounted and says why.
 */
#ifndef SBX_ROOTVIEW_H
#define SBX_ROOTVIEW_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

struct root_view {
    bool ro;
    const char *source, *target;
    /* all three, or none (no overlay) */
    const char *upper, *work, *merged;
};

/* Mounts the view idmapped by the user namespace `ns`; 0, or -1 with `why` filled. */
static int mount_root_view(int ns, const struct root_view *v, char *why, size_t why_len)
{
    int tree = open_tree(AT_FDCWD, v->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
        snprintf(why, why_len, "open_tree %s: %s", v->source, strerror(errno));
        return -1;
    }
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (v->ro ? MOUNT_ATTR_RDONLY : 0), .userns_fd = (unsigned long)ns};
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
        snprintf(why, why_len, "idmapping %s: %s", v->source, strerror(errno));
        close(tree);
        return -1;
    }
    if (move_mount(tree, "", AT_FDCWD, v->target, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        snprintf(why, why_len, "mounting at %s: %s", v->target, strerror(errno));
        close(tree);
        return -1;
    }
    close(tree);
    if (!v->merged) return 0;
    char opts[3 * PATH_MAX + 128];
    int n = snprintf(opts, sizeof opts, "redirect_dir=nofollow,metacopy=off,index=off,xino=off,lowerdir=%s,upperdir=%s,workdir=%s", v->target, v->upper, v->work);
    if (n < 0 || (size_t)n >= sizeof opts || mount("overlay", v->merged, "overlay", MS_NOSUID | MS_NODEV, opts) < 0) {
        snprintf(why, why_len, "mounting the overlay at %s: %s", v->merged, n < 0 || (size_t)n >= sizeof opts ? "paths too long" : strerror(errno));
        umount2(v->target, MNT_DETACH);
        return -1;
    }
    return 0;
}

#endif
