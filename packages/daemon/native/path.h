/* Paths the way Node's path module spells them, so messages and results read the same. */
#ifndef SBX_PATH_H
#define SBX_PATH_H

#include <stddef.h>

/* Room for any path the protocol allows (4096 UTF-16 units can be 12 KiB of UTF-8). */
#define PATH_BUF 16384
#define HOME_DIR "/home/sandbox"
/* The home's former name, bound to the same directory (protocol SANDBOX_HOME_ALIAS). */
#define HOME_ALIAS "/home/user"

/* path.resolve(base, p) for an absolute base: lexical, no file system access. -1: too long. */
int path_resolve(char *out, size_t cap, const char *base, const char *p);
/* path.resolve(HOME, p): where the protocol's paths point. */
int path_at(char *out, size_t cap, const char *p);
/* The directory part and the last component of a normalised absolute path. */
void path_split(const char *path, char *dir, size_t dir_cap, const char **base);

#endif
