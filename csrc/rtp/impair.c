/* Seeded send-side impairments; see impair.h. */
#include "rtp/impair.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

double impair_uniform(struct impair *im)
{
    return (double)(splitmix64(&im->state) >> 11) * (1.0 / 9007199254740992.0);
}

static int prob_ok(double p)
{
    return isfinite(p) && p >= 0.0 && p <= 1.0;
}

int impair_cfg_check(const struct impair_cfg *c)
{
    if (c->jitter != IMPAIR_JITTER_NONE && c->jitter != IMPAIR_JITTER_UNIFORM && c->jitter != IMPAIR_JITTER_NORMAL)
        return -EINVAL;
    if (!isfinite(c->jitter_ms) || c->jitter_ms < 0.0 || c->jitter_ms > 1000.0)
        return -EINVAL;
    if (!prob_ok(c->loss) || !prob_ok(c->duplicate) || !prob_ok(c->reorder))
        return -EINVAL;
    return 0;
}

int impair_cfg_active(const struct impair_cfg *c)
{
    return (c->jitter != IMPAIR_JITTER_NONE && c->jitter_ms > 0.0) || c->loss > 0.0 || c->duplicate > 0.0 ||
           c->reorder > 0.0;
}

void impair_init(struct impair *im, const struct impair_cfg *c)
{
    memset(im, 0, sizeof *im);
    im->cfg = *c;
    im->state = c->seed;
}

/* A standard normal deviate (Box-Muller). */
static double normal(struct impair *im)
{
    double u1 = impair_uniform(im), u2 = impair_uniform(im);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void impair_decide(struct impair *im, uint32_t ptime_us, struct impair_decision *d)
{
    const struct impair_cfg *c = &im->cfg;
    /* every draw happens for every packet, so that one setting does not shift another's sequence */
    double u_loss = impair_uniform(im), u_dup = impair_uniform(im), u_reo = impair_uniform(im);
    double delay_ms = 0.0;
    if (c->jitter == IMPAIR_JITTER_UNIFORM) {
        delay_ms = impair_uniform(im) * c->jitter_ms;
    } else if (c->jitter == IMPAIR_JITTER_NORMAL) {
        delay_ms = c->jitter_ms / 2.0 + normal(im) * c->jitter_ms / 4.0;
        if (delay_ms < 0.0)
            delay_ms = 0.0;
        if (delay_ms > c->jitter_ms)
            delay_ms = c->jitter_ms;
    }
    d->drop = u_loss < c->loss;
    d->copies = u_dup < c->duplicate ? 2 : 1;
    d->delay_us = (uint32_t)(delay_ms * 1000.0);
    d->reordered = u_reo < c->reorder;
    if (d->reordered)
        d->delay_us += ptime_us + 1000u;
}
