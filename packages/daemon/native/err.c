#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* libuv's wording (uv_strerror), which is what Node's messages carry. */
static const struct {
    int e;
    const char *desc;
} DESCS[] = {
    {E2BIG, "argument list too long"},     {EACCES, "permission denied"},
    {EAGAIN, "resource temporarily unavailable"}, {EBADF, "bad file descriptor"},
    {EBUSY, "resource busy or locked"},    {EEXIST, "file already exists"},
    {EFAULT, "bad address in system call argument"}, {EFBIG, "file too large"},
    {EINTR, "interrupted system call"},    {EINVAL, "invalid argument"},
    {EIO, "i/o error"},                    {EISDIR, "illegal operation on a directory"},
    {ELOOP, "too many symbolic links encountered"}, {EMFILE, "too many open files"},
    {EMLINK, "too many links"},            {ENAMETOOLONG, "name too long"},
    {ENFILE, "file table overflow"},       {ENODEV, "no such device"},
    {ENOENT, "no such file or directory"}, {ENOMEM, "not enough memory"},
    {ENOSPC, "no space left on device"},   {ENOSYS, "function not implemented"},
    {ENOTDIR, "not a directory"},          {ENOTEMPTY, "directory not empty"},
    {ENOTSUP, "operation not supported on socket"}, {ENXIO, "no such device or address"},
    {EPERM, "operation not permitted"},    {EPIPE, "broken pipe"},
    {EROFS, "read-only file system"},      {ESPIPE, "invalid seek"},
    {ESRCH, "no such process"},            {ETXTBSY, "text file is busy"},
    {EXDEV, "cross-device link not permitted"}, {EOVERFLOW, "value too large for defined data type"},
    {EDQUOT, "disk quota exceeded"},       {ECANCELED, "operation canceled"},
    {ENOEXEC, "exec format error"},        {ECHILD, "no child processes"},
};

const char *errno_name(int errnum)
{
    const char *n = strerrorname_np(errnum);
    return n ? n : "EIO";
}

const char *errno_desc(int errnum)
{
    for (size_t i = 0; i < sizeof DESCS / sizeof DESCS[0]; i++)
        if (DESCS[i].e == errnum) return DESCS[i].desc;
    const char *d = strerrordesc_np(errnum);
    return d ? d : "unknown error";
}

void err_set(struct err *e, const char *code, int errnum, const char *fmt, ...)
{
    e->code = code;
    e->errno_name[0] = 0;
    if (errnum) snprintf(e->errno_name, sizeof e->errno_name, "%s", errno_name(errnum));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

const char *errno_hint(int errnum)
{
    if (errnum == ENOSPC) return " (no space left: the sandbox's disk is full)";
    if (errnum == EIO) return " (an I/O error: the data did not reach the disk; the host's disk may be full)";
    return "";
}

void err_fs(struct err *e, int errnum, const char *syscall, const char *path)
{
    err_set(e, "FileSystem", errnum, "%s: %s, %s '%s'%s", errno_name(errnum), errno_desc(errnum), syscall, path, errno_hint(errnum));
}

void err_fs2(struct err *e, int errnum, const char *syscall, const char *from, const char *to)
{
    err_set(e, "FileSystem", errnum, "%s: %s, %s '%s' -> '%s'%s", errno_name(errnum), errno_desc(errnum), syscall, from, to, errno_hint(errnum));
}
