/*
 * fs.copyFile, as libuv does it (create or truncate the destination with the source's mode,
 * remove it again on failure), copied a slice per loop turn so a large copy never stalls
 * the other streams and calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "handlers.h"
#include "loop.h"
#include "path.h"
#include "util.h"

#define SLICE (16u << 20)

struct copy_job {
    struct task task;
    int64_t id;
    int in, out;
    bool plain_io;
    char from[PATH_BUF], to[PATH_BUF];
};

static void copy_destroy(struct task *t) { free(t); }

static void copy_end(struct copy_job *j, int errnum)
{
    close(j->in);
    int close_errno = close(j->out) < 0 ? errno : 0;
    if (!errnum) errnum = close_errno;
    if (errnum) {
        unlink(j->to);
        struct err e;
        err_fs2(&e, errnum, "copyfile", j->from, j->to);
        reply_err(j->id, &e);
    } else {
        reply_null(j->id);
    }
    task_end(&j->task);
}

static ssize_t plain_copy(struct copy_job *j)
{
    static uint8_t buf[256 * 1024];
    ssize_t total = 0;
    while ((size_t)total < SLICE / 4) {
        ssize_t n = read(j->in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -1 : total;
        if (write_full(j->out, buf, (size_t)n) < 0) return -1;
        total += n;
    }
    return total;
}

static bool copy_pump(struct task *t)
{
    struct copy_job *j = (struct copy_job *)t;
    ssize_t n;
    if (!j->plain_io) {
        n = copy_file_range(j->in, NULL, j->out, NULL, SLICE, 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
            j->plain_io = true;
            return true;
        }
    } else {
        n = plain_copy(j);
    }
    if (n < 0) {
        if (errno == EINTR) return true;
        copy_end(j, errno);
        return false;
    }
    if (n == 0) {
        copy_end(j, 0);
        return false;
    }
    return true;
}

void h_copy_file(int64_t id, const jv *p)
{
    struct copy_job *j = xcalloc(1, sizeof *j);
    struct err e;
    struct stat src, dst;
    j->in = j->out = -1;
    j->id = id;
    if (param_path(p, "from", true, j->from, &e) < 0 || param_path(p, "to", true, j->to, &e) < 0) goto fail;
    /* Non-blocking opens: a FIFO at either end must not wedge the supervisor. */
    j->in = open(j->from, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (j->in < 0 || fstat(j->in, &src) < 0) goto sys_fail;
    if (S_ISDIR(src.st_mode) || S_ISFIFO(src.st_mode) || S_ISSOCK(src.st_mode)) {
        errno = S_ISDIR(src.st_mode) ? EISDIR : EINVAL;
        goto sys_fail;
    }
    j->out = open(j->to, O_WRONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, src.st_mode & 07777);
    if (j->out < 0 || fstat(j->out, &dst) < 0) goto sys_fail;
    if (S_ISFIFO(dst.st_mode)) {
        errno = EINVAL;
        goto sys_fail;
    }
    if (src.st_dev == dst.st_dev && src.st_ino == dst.st_ino) {
        close(j->in);
        close(j->out);
        free(j);
        reply_null(id);
        return;
    }
    int flags = fcntl(j->in, F_GETFL);
    if (flags < 0 || fcntl(j->in, F_SETFL, flags & ~O_NONBLOCK) < 0) goto sys_fail;
    if ((S_ISREG(dst.st_mode) && ftruncate(j->out, 0) < 0) || fchmod(j->out, src.st_mode & 07777) < 0) goto sys_fail;
    task_start(&j->task, copy_pump, copy_destroy);
    return;
sys_fail:
    err_fs2(&e, errno, "copyfile", j->from, j->to);
fail:
    if (j->in >= 0) close(j->in);
    if (j->out >= 0) close(j->out);
    free(j);
    reply_err(id, &e);
}
