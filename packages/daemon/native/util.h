/* Small helpers every module uses: a growable byte buffer and fd utilities. */
#ifndef SBX_UTIL_H
#define SBX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* A byte buffer that grows up to `limit` bytes (0: no limit beyond SIZE_MAX / 2). */
typedef struct {
    uint8_t *p;
    size_t len, cap, limit;
} buf_t;

/* 0 on success, -1 (errno ENOMEM or E2BIG past the limit) otherwise. */
int buf_reserve(buf_t *b, size_t extra);
int buf_put(buf_t *b, const void *data, size_t n);
int buf_putc(buf_t *b, uint8_t c);
int buf_puts(buf_t *b, const char *s);
void buf_free(buf_t *b);

/* malloc that ends the supervisor when the heap is exhausted: nothing sensible can continue. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrndup(const char *s, size_t n);

/* Copies what fits of src into dst[cap], cutting between UTF-8 sequences, always NUL-terminated. */
void str_copy(char *dst, size_t cap, const char *src);

int fd_set_nonblock(int fd);
/* Writes everything or fails; retries EINTR only (for blocking fds). */
int write_full(int fd, const void *p, size_t n);
/* Fills `out` with 2*n lowercase hex characters from the kernel's CSPRNG, then NUL. */
int random_hex(char *out, size_t n);

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
