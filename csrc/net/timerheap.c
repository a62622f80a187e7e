#include "timerheap.h"

#include <errno.h>
#include <stdlib.h>

void timerheap_init(struct timerheap *h)
{
    h->v = NULL;
    h->n = 0;
    h->cap = 0;
}

void timerheap_free(struct timerheap *h)
{
    free(h->v);
    timerheap_init(h);
}

static void swap(struct timer_entry *a, struct timer_entry *b)
{
    struct timer_entry t = *a;
    *a = *b;
    *b = t;
}

int timerheap_push(struct timerheap *h, struct timer_entry e)
{
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 64;
        struct timer_entry *nv = realloc(h->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        h->v = nv;
        h->cap = ncap;
    }
    size_t i = h->n++;
    h->v[i] = e;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p].deadline <= h->v[i].deadline)
            break;
        swap(&h->v[p], &h->v[i]);
        i = p;
    }
    return 0;
}

int timerheap_pop_due(struct timerheap *h, uint64_t now, struct timer_entry *out)
{
    if (h->n == 0 || h->v[0].deadline > now)
        return 0;
    *out = h->v[0];
    h->v[0] = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l].deadline < h->v[m].deadline)
            m = l;
        if (r < h->n && h->v[r].deadline < h->v[m].deadline)
            m = r;
        if (m == i)
            break;
        swap(&h->v[m], &h->v[i]);
        i = m;
    }
    return 1;
}

uint64_t timerheap_next(const struct timerheap *h)
{
    return h->n ? h->v[0].deadline : UINT64_MAX;
}
