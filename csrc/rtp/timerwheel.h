/* A hashed timer wheel with 1 ms slots (sans-IO: time is an input).
 *
 * TWHEEL_SLOTS slots of one millisecond each; a timer due at absolute time
 * `expires` (ms, any monotonic origin) lives in slot expires % TWHEEL_SLOTS.
 * Timers further away than one revolution share the slot with nearer ones
 * and wait for their round: each keeps its absolute deadline, so its round
 * is (expires - tick) / TWHEEL_SLOTS and nothing needs decrementing.
 * Insert and remove are O(1) (intrusive doubly linked lists); popping the
 * due timers walks the slots tick by tick.
 *
 * The wheel does not allocate: timers are embedded in their owner's struct
 * and the wheel only links them.  Not thread-safe; one owner thread.
 */
#ifndef PYSIPTEST_RTP_TIMERWHEEL_H
#define PYSIPTEST_RTP_TIMERWHEEL_H

#include <stddef.h>
#include <stdint.h>

#define TWHEEL_SLOTS 1024u /* a power of two */
#define TWHEEL_NEVER UINT64_MAX

struct twheel_timer {
    struct twheel_timer *next, *prev; /* slot list links; prev == NULL when not armed */
    uint64_t expires;                 /* absolute deadline, ms */
    void *arg;                        /* owner's cookie, untouched by the wheel */
};

struct twheel_slot {
    struct twheel_timer head; /* sentinel of a circular list */
};

struct twheel {
    uint64_t tick; /* the next millisecond not yet processed */
    size_t count;  /* armed timers */
    struct twheel_slot slots[TWHEEL_SLOTS];
};

/* Start an empty wheel at time now (ms). */
void twheel_init(struct twheel *w, uint64_t now);
/* Prepare a timer (borrowed; the caller owns its storage) before its first use. */
void twheel_timer_init(struct twheel_timer *t, void *arg);
/* Arm t at absolute time expires; a deadline already past fires at the next pop.
 * Re-arming an armed timer moves it.  O(1). */
void twheel_add(struct twheel *w, struct twheel_timer *t, uint64_t expires);
/* Disarm t; harmless when not armed.  O(1). */
void twheel_remove(struct twheel *w, struct twheel_timer *t);
/* 1 when t is armed. */
int twheel_armed(const struct twheel_timer *t);
/* Remove and return the earliest timer due at or before now, NULL when none.
 * Timers come out in deadline order; equal deadlines in the order they were added. */
struct twheel_timer *twheel_pop(struct twheel *w, uint64_t now);
/* The absolute ms at which the next pop could return a timer: the earliest deadline
 * within one revolution, or a revolution ahead when every timer is further away,
 * TWHEEL_NEVER when the wheel is empty.  Never earlier than w->tick. */
uint64_t twheel_next_due(const struct twheel *w);

#endif
