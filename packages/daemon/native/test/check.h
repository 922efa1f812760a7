/* A minimal assertion harness for the native tests: counts failures, never stops early. */
#ifndef SBX_CHECK_H
#define SBX_CHECK_H

#include <stdio.h>
#include <string.h>

/* Defined once by each test program. */
extern int check_failures, check_count;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        check_count++;                                                                      \
        if (!(cond) && check_failures++ < 20) {                                             \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                                   \
    } while (0)

static inline int check_same(const char *got, const char *want) { return got && strcmp(got, want) == 0; }
#define CHECK_STR(got, want) CHECK(check_same((got), (want)))

#endif
