/* A binary min-heap of deadlines.  Entries carry an owner-defined kind, id and
 * generation; cancellation is lazy (the owner bumps its generation and drops
 * stale entries when they pop).  Time is an input: nothing here reads a clock. */
#ifndef PYSIPTEST_NET_TIMERHEAP_H
#define PYSIPTEST_NET_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>

struct timer_entry {
    uint64_t deadline;
    uint32_t kind;
    uint32_t id;
    uint32_t gen;
};

struct timerheap {
    struct timer_entry *v;
    size_t n;
    size_t cap;
};

void timerheap_init(struct timerheap *h);
void timerheap_free(struct timerheap *h);
/* 0 or -ENOMEM. */
int timerheap_push(struct timerheap *h, struct timer_entry e);
/* Pops the earliest entry if its deadline <= now; 1 popped, 0 none due. */
int timerheap_pop_due(struct timerheap *h, uint64_t now, struct timer_entry *out);
/* Earliest deadline or UINT64_MAX. */
uint64_t timerheap_next(const struct timerheap *h);

#endif
