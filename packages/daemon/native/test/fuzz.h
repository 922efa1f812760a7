/* Shared by the fuzzers: the random source, the clock and one random edit of a buffer. */
#ifndef SBX_FUZZ_H
#define SBX_FUZZ_H

#include <stddef.h>
#include <stdint.h>

extern uint64_t rng;
uint64_t next(void);
size_t below(size_t n);
double now(void);
extern const uint8_t INTERESTING[];
extern const size_t INTERESTING_LEN;
size_t mutate(uint8_t *buf, size_t len, size_t cap, const uint8_t *other, size_t other_len);

void fuzz_frames(double until);
void fuzz_json(double until);
void fuzz_tar(double until);

#endif
