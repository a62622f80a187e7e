#include "strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const void *key, size_t len)
{
    /* FNV-1a 64 */
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void strmap_init(struct strmap *m)
{
    m->s = NULL;
    m->cap = 0;
    m->n = 0;
}

void strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->s[i].key);
    free(m->s);
    strmap_init(m);
}

static long find_slot(const struct strmap *m, const void *key, size_t klen, uint64_t h)
{
    if (m->cap == 0)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct strmap_slot *s = &m->s[i];
        if (s->key == NULL)
            return -1;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return (long)i;
    }
}

void *strmap_get(const struct strmap *m, const void *key, size_t klen)
{
    long i = find_slot(m, key, klen, hash_bytes(key, klen));
    return i < 0 ? NULL : m->s[i].val;
}

static int grow(struct strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct strmap_slot *ns = calloc(ncap, sizeof(*ns));
    if (ns == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->s[i].key == NULL)
            continue;
        size_t j = m->s[i].hash & (ncap - 1);
        while (ns[j].key != NULL)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->s[i];
    }
    free(m->s);
    m->s = ns;
    m->cap = ncap;
    return 0;
}

int strmap_put(struct strmap *m, const void *key, size_t klen, void *val)
{
    uint64_t h = hash_bytes(key, klen);
    long i = find_slot(m, key, klen, h);
    if (i >= 0) {
        m->s[i].val = val;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap && grow(m) < 0) /* at most half full: short probe runs in big tables */
        return -ENOMEM;
    char *k = malloc(klen ? klen : 1);
    if (k == NULL)
        return -ENOMEM;
    memcpy(k, key, klen);
    size_t mask = m->cap - 1, j = h & mask;
    while (m->s[j].key != NULL)
        j = (j + 1) & mask;
    m->s[j].key = k;
    m->s[j].klen = klen;
    m->s[j].hash = h;
    m->s[j].val = val;
    m->n++;
    return 0;
}

void *strmap_del(struct strmap *m, const void *key, size_t klen)
{
    uint64_t h = hash_bytes(key, klen);
    long found = find_slot(m, key, klen, h);
    if (found < 0)
        return NULL;
    size_t mask = m->cap - 1, i = (size_t)found;
    void *val = m->s[i].val;
    free(m->s[i].key);
    m->s[i].key = NULL;
    m->n--;
    /* backward-shift: move later entries of the cluster into the hole when their home allows */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->s[j].key == NULL)
            break;
        size_t home = m->s[j].hash & mask;
        /* can the entry at j move to i? yes if home is not cyclically in (i, j] */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->s[i] = m->s[j];
            m->s[j].key = NULL;
            i = j;
        }
    }
    return val;
}

long strmap_next(const struct strmap *m, size_t *i)
{
    while (*i < m->cap) {
        size_t k = (*i)++;
        if (m->s[k].key != NULL)
            return (long)k;
    }
    return -1;
}
