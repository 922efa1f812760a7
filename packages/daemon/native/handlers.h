/* Every call the supervisor implements, one function each. */
#ifndef SBX_HANDLERS_H
#define SBX_HANDLERS_H

#include <stdint.h>

#include "json.h"

typedef void handler_fn(int64_t id, const jv *p);

handler_fn h_spawn, h_kill;
handler_fn h_stat, h_lstat, h_read_dir, h_mkdir, h_remove, h_rename, h_chmod, h_symlink, h_read_link, h_real_path, h_make_temp_dir;
handler_fn h_copy_file, h_read_file, h_write_file, h_upload, h_download;
handler_fn h_link, h_make_temp_file, h_truncate, h_umask, h_utime, h_chown;
handler_fn h_open, h_file_read, h_file_write, h_file_seek, h_file_stat, h_file_truncate, h_file_sync, h_file_utime, h_file_lock, h_file_unlock,
    h_file_close;

#endif
