/* Send-side impairments for testing a receiver: jitter, loss, duplication, reordering.
 * Sans-IO and seeded: the same seed gives the same decisions, so a run repeats. */
#ifndef PYSIPTEST_RTP_IMPAIR_H
#define PYSIPTEST_RTP_IMPAIR_H

#include <stdint.h>

enum impair_jitter { IMPAIR_JITTER_NONE = 0, IMPAIR_JITTER_UNIFORM, IMPAIR_JITTER_NORMAL };

struct impair_cfg {
    enum impair_jitter jitter;
    double jitter_ms;  /* the bound: every delay is within [0, jitter_ms]; normal: mean bound/2, sd bound/4 */
    double loss;       /* probability that a packet is not sent, 0..1 */
    double duplicate;  /* probability that a packet is sent twice */
    double reorder;    /* probability that a packet is held back behind the next one */
    uint64_t seed;
};

struct impair {
    struct impair_cfg cfg;
    uint64_t state; /* splitmix64 */
};

struct impair_decision {
    int drop;            /* 1: do not send */
    int copies;          /* 1 or 2 */
    int reordered;       /* 1: held back behind the next packet (included in delay_us) */
    uint32_t delay_us;   /* extra send delay */
};

/* 0 or -EINVAL (a probability outside 0..1, a negative or non-finite bound, an unknown distribution). */
int impair_cfg_check(const struct impair_cfg *c);
/* 1 when c changes anything. */
int impair_cfg_active(const struct impair_cfg *c);
void impair_init(struct impair *im, const struct impair_cfg *c);
/* Decide the fate of the next packet; ptime_us is the stream's packet interval (a reordered packet
 * is delayed by one interval and a millisecond more, so that the next one overtakes it). */
void impair_decide(struct impair *im, uint32_t ptime_us, struct impair_decision *d);
/* A uniform double in [0, 1) from the generator (exposed for tests). */
double impair_uniform(struct impair *im);

#endif
