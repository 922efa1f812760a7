/* An open-addressing map from nonzero u32 keys (stream ids, pids) to pointers. */
#ifndef SBX_IDMAP_H
#define SBX_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
    uint32_t *keys;
    void **vals;
    size_t cap, count, tombs;
};

void *idmap_get(const struct idmap *m, uint32_t key);
void idmap_put(struct idmap *m, uint32_t key, void *val);
void *idmap_del(struct idmap *m, uint32_t key);

#endif
