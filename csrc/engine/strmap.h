/* A hash map from byte-string keys to pointers (open addressing, linear
 * probing, backward-shift deletion).  Keys are copied; values are borrowed.
 * Used by the engine for transaction (branch) and dialog (Call-ID + tags)
 * matching and for id tables.  Not thread-safe: the engine lock protects it. */
#ifndef PYSIPTEST_ENGINE_STRMAP_H
#define PYSIPTEST_ENGINE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
    char *key; /* NULL = empty */
    size_t klen;
    uint64_t hash;
    void *val;
};

struct strmap {
    struct strmap_slot *s;
    size_t cap; /* power of two */
    size_t n;
};

void strmap_init(struct strmap *m);
/* Frees keys and slots, not the values. */
void strmap_free(struct strmap *m);
void *strmap_get(const struct strmap *m, const void *key, size_t klen);
/* Insert or replace. 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const void *key, size_t klen, void *val);
/* Remove; returns the value or NULL. */
void *strmap_del(struct strmap *m, const void *key, size_t klen);
/* Key for a 32-bit id. */
static inline void strmap_idkey(uint32_t id, unsigned char k[4])
{
    k[0] = (unsigned char)(id >> 24);
    k[1] = (unsigned char)(id >> 16);
    k[2] = (unsigned char)(id >> 8);
    k[3] = (unsigned char)id;
}
/* Iterate: i from 0; returns the next used slot index >= *i or -1. */
long strmap_next(const struct strmap *m, size_t *i);

#endif
