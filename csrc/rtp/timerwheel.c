/* Hashed timer wheel, 1 ms slots; see timerwheel.h. */
#include "rtp/timerwheel.h"

#define TWHEEL_MASK ((uint64_t)TWHEEL_SLOTS - 1u)

_Static_assert((TWHEEL_SLOTS & (TWHEEL_SLOTS - 1u)) == 0, "TWHEEL_SLOTS must be a power of two");

static struct twheel_timer *slot_head(struct twheel *w, uint64_t tick)
{
    return &w->slots[tick & TWHEEL_MASK].head;
}

static const struct twheel_timer *slot_head_c(const struct twheel *w, uint64_t tick)
{
    return &w->slots[tick & TWHEEL_MASK].head;
}

void twheel_init(struct twheel *w, uint64_t now)
{
    w->tick = now;
    w->count = 0;
    for (size_t i = 0; i < TWHEEL_SLOTS; i++) {
        w->slots[i].head.next = &w->slots[i].head;
        w->slots[i].head.prev = &w->slots[i].head;
        w->slots[i].head.expires = 0;
        w->slots[i].head.arg = NULL;
    }
}

void twheel_timer_init(struct twheel_timer *t, void *arg)
{
    t->next = NULL;
    t->prev = NULL;
    t->expires = 0;
    t->arg = arg;
}

int twheel_armed(const struct twheel_timer *t)
{
    return t->prev != NULL;
}

static void unlink_timer(struct twheel *w, struct twheel_timer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = NULL;
    t->prev = NULL;
    w->count--;
}

void twheel_remove(struct twheel *w, struct twheel_timer *t)
{
    if (twheel_armed(t))
        unlink_timer(w, t);
}

void twheel_add(struct twheel *w, struct twheel_timer *t, uint64_t expires)
{
    twheel_remove(w, t);
    /* Invariant: every armed timer has expires >= w->tick, so that the slot
     * of tick t only ever holds deadlines t, t + SLOTS, t + 2*SLOTS, ... */
    if (expires < w->tick)
        expires = w->tick;
    t->expires = expires;
    struct twheel_timer *h = slot_head(w, expires);
    t->next = h;
    t->prev = h->prev; /* append: equal deadlines stay in insertion order */
    h->prev->next = t;
    h->prev = t;
    w->count++;
}

/* The first timer in the slot of `tick` whose deadline is exactly tick. */
static struct twheel_timer *due_in_slot(const struct twheel *w, uint64_t tick)
{
    const struct twheel_timer *h = slot_head_c(w, tick);
    for (struct twheel_timer *t = h->next; t != h; t = t->next) {
        if (t->expires <= tick)
            return t;
    }
    return NULL;
}

static uint64_t earliest_deadline(const struct twheel *w)
{
    uint64_t min = TWHEEL_NEVER;
    for (size_t i = 0; i < TWHEEL_SLOTS; i++) {
        const struct twheel_timer *h = &w->slots[i].head;
        for (const struct twheel_timer *t = h->next; t != h; t = t->next) {
            if (t->expires < min)
                min = t->expires;
        }
    }
    return min;
}

struct twheel_timer *twheel_pop(struct twheel *w, uint64_t now)
{
    size_t idle = 0;
    while (w->tick <= now) {
        if (w->count == 0) {
            w->tick = now;
            return NULL;
        }
        struct twheel_timer *t = due_in_slot(w, w->tick);
        if (t != NULL) {
            unlink_timer(w, t);
            return t;
        }
        if (w->tick == now)
            break; /* keep tick at now: a timer added for now still fires at the next pop */
        w->tick++;
        if (++idle >= TWHEEL_SLOTS) {
            /* A whole revolution without a due timer: every deadline is at least a round
             * away, so jump straight to the earliest one instead of walking to it. */
            uint64_t min = earliest_deadline(w);
            w->tick = min < now ? min : now;
            idle = 0;
        }
    }
    return NULL;
}

uint64_t twheel_next_due(const struct twheel *w)
{
    if (w->count == 0)
        return TWHEEL_NEVER;
    for (uint64_t i = 0; i < TWHEEL_SLOTS; i++) {
        uint64_t tick = w->tick + i;
        const struct twheel_timer *h = slot_head_c(w, tick);
        if (h->next != h && due_in_slot(w, tick) != NULL)
            return tick;
    }
    return w->tick + TWHEEL_SLOTS;
}
