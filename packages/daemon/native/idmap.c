#include "idmap.h"

#include <stdlib.h>

#include "util.h"

#define TOMB UINT32_MAX

static size_t slot(uint32_t key, size_t cap) { return (size_t)(key * 2654435761u) & (cap - 1); }

void *idmap_get(const struct idmap *m, uint32_t key)
{
    if (!m->cap || key == 0 || key == TOMB) return NULL;
    for (size_t i = slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == 0) return NULL;
    }
}

static void grow(struct idmap *m)
{
    size_t cap = m->cap ? m->cap : 16;
    while ((m->count + 1) * 2 > cap) cap *= 2;
    uint32_t *keys = xcalloc(cap, sizeof *keys);
    void **vals = xcalloc(cap, sizeof *vals);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == 0 || m->keys[i] == TOMB) continue;
        size_t j = slot(m->keys[i], cap);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->tombs = 0;
}

void idmap_put(struct idmap *m, uint32_t key, void *val)
{
    if (key == 0 || key == TOMB) die("idmap: reserved key");
    if ((m->count + m->tombs + 1) * 4 > m->cap * 3) grow(m);
    size_t i = slot(key, m->cap), free_slot = SIZE_MAX;
    for (;; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return;
        }
        if (m->keys[i] == TOMB && free_slot == SIZE_MAX) free_slot = i;
        if (m->keys[i] == 0) break;
    }
    if (free_slot != SIZE_MAX) {
        i = free_slot;
        m->tombs--;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
}

void *idmap_del(struct idmap *m, uint32_t key)
{
    if (!m->cap || key == 0 || key == TOMB) return NULL;
    for (size_t i = slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            void *v = m->vals[i];
            m->keys[i] = TOMB;
            m->vals[i] = NULL;
            m->count--;
            m->tombs++;
            return v;
        }
        if (m->keys[i] == 0) return NULL;
    }
}
