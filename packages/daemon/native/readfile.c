/* fs.readFile: replies with the size once the file is open, then streams it out under credit. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "call.h"
#include "chan.h"
#include "handlers.h"
#include "path.h"
#include "stream.h"

void h_read_file(int64_t id, const jv *p)
{
    char path[PATH_BUF];
    struct err e;
    uint32_t sid;
    struct stat st;
    if (param_path(p, "path", true, path, &e) < 0 || param_stream(p, "stream", &sid, &e) < 0) goto fail;
    if (!sid) {
        err_set(&e, "InvalidParams", 0, "params.stream: required");
        goto fail;
    }
    /* Non-blocking: opening a FIFO must not wait for a writer (it is refused just below). */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        err_fs(&e, errno, "open", path);
        goto fail_stream;
    }
    int bad = fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (bad) {
        err_fs(&e, bad, "read", path);
        close(fd);
        goto fail_stream;
    }
    /* A FIFO or a device can be endless (a FIFO fed from /dev/zero): only regular files are read. */
    if (!S_ISREG(st.st_mode)) {
        err_set(&e, "FileSystem", EINVAL, "EINVAL: not a regular file (a FIFO, device or socket), read '%s'", path);
        close(fd);
        goto fail_stream;
    }
    jw w;
    reply_begin(&w, id);
    jw_obj(&w);
    jw_key(&w, "size");
    jw_int(&w, st.st_size);
    jw_obj_end(&w);
    reply_finish(&w, id);
    out_open(sid, &FD_SOURCE, NULL, fd);
    return;
fail_stream:
    chan_abort(sid, e.msg);
fail:
    reply_err(id, &e);
}
