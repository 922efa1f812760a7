/*
 * Errors as the daemon expects them (channel/messages.ts): a code, a message and, for file
 * system failures, the errno name. Messages follow Node's wording ("ENOENT: no such file or
 * directory, open '/home/sandbox/x'") because tests and users read them.
 */
#ifndef SBX_ERR_H
#define SBX_ERR_H

#define ERR_MSG_MAX 8000

struct err {
    const char *code;
    char errno_name[33];
    char msg[ERR_MSG_MAX + 1];
};

/* Longest message sent; the daemon accepts 8192 characters. */
void err_set(struct err *e, const char *code, int errnum, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "<ENAME>: <description>, <syscall> '<path>'" (plus the disk-full hint for ENOSPC). */
void err_fs(struct err *e, int errnum, const char *syscall, const char *path);
void err_fs2(struct err *e, int errnum, const char *syscall, const char *from, const char *to);
const char *errno_name(int errnum);
const char *errno_desc(int errnum);
/* What a user should know beside the errno: a full disk, an I/O error that lost data. */
const char *errno_hint(int errnum);

#endif
