/* RTP receive statistics (RFC 3550 A.1, A.3, A.8); see rtp_stats.h. */
#include "rtp/rtp_stats.h"

#include <string.h>

_Static_assert(RTP_SEQ_WINDOW % 64 == 0 && RTP_SEQ_WINDOW > RTP_MAX_MISORDER, "bad RTP_SEQ_WINDOW");

/* A 32-bit two's complement difference as a signed value, without implementation-defined casts. */
static int64_t diff32(uint32_t v)
{
    return v >= 0x80000000u ? (int64_t)v - (int64_t)0x100000000 : (int64_t)v;
}

static void seen_set(struct rtp_seq *s, int64_t ext)
{
    uint64_t i = (uint64_t)ext % RTP_SEQ_WINDOW;
    s->seen[i / 64] |= (uint64_t)1 << (i % 64);
}

static void seen_clear(struct rtp_seq *s, int64_t ext)
{
    uint64_t i = (uint64_t)ext % RTP_SEQ_WINDOW;
    s->seen[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static int seen_get(const struct rtp_seq *s, int64_t ext)
{
    uint64_t i = (uint64_t)ext % RTP_SEQ_WINDOW;
    return (int)((s->seen[i / 64] >> (i % 64)) & 1u);
}

void rtp_seq_init(struct rtp_seq *s)
{
    memset(s, 0, sizeof *s);
    s->bad_seq = RTP_SEQ_MOD + 1;
}

/* A.1 init_seq: (re)start counting at seq.  Extended numbers start one cycle up so that a
 * reordered packet from just before the first one still has a non-negative number. */
static void seq_restart(struct rtp_seq *s, uint16_t seq)
{
    s->started = 1;
    s->max_seq = seq;
    s->ext_max = RTP_SEQ_MOD + (int64_t)seq;
    s->ext_base = s->ext_max;
    s->bad_seq = RTP_SEQ_MOD + 1;
    s->received = 1;
    memset(s->seen, 0, sizeof s->seen);
    seen_set(s, s->ext_max);
}

enum rtp_seq_result rtp_seq_update(struct rtp_seq *s, uint16_t seq)
{
    if (!s->started) {
        seq_restart(s, seq);
        return RTP_SEQ_FIRST;
    }
    uint16_t udelta = (uint16_t)(seq - s->max_seq);
    if (udelta == 0) {
        s->duplicates++;
        return RTP_SEQ_DUPLICATE;
    }
    if (udelta < RTP_MAX_DROPOUT) {
        /* in order, with a permissible gap; wraps into the next cycle when seq < max_seq */
        int64_t ext = s->ext_max + udelta;
        int64_t from = s->ext_max + 1;
        if (ext - from >= RTP_SEQ_WINDOW)
            from = ext - RTP_SEQ_WINDOW + 1;
        for (int64_t e = from; e < ext; e++)
            seen_clear(s, e);
        seen_set(s, ext);
        s->ext_max = ext;
        s->max_seq = seq;
        s->bad_seq = RTP_SEQ_MOD + 1;
        s->received++;
        return RTP_SEQ_IN_ORDER;
    }
    if (udelta <= RTP_SEQ_MOD - RTP_MAX_MISORDER) {
        /* a very large jump */
        if (seq == s->bad_seq) {
            /* two sequential packets: assume the source restarted without telling us */
            s->lost_prior = rtp_seq_lost(s);
            seq_restart(s, seq);
            return RTP_SEQ_RESYNC;
        }
        s->bad_seq = (uint32_t)((seq + 1u) & 0xFFFFu);
        return RTP_SEQ_JUMP;
    }
    /* older than max_seq by at most MAX_MISORDER: a duplicate or a reordered packet */
    int64_t ext = s->ext_max - (RTP_SEQ_MOD - (int64_t)udelta);
    if (seen_get(s, ext)) {
        s->duplicates++;
        return RTP_SEQ_DUPLICATE;
    }
    seen_set(s, ext);
    if (ext < s->ext_base)
        s->ext_base = ext; /* it was sent before the first one we saw */
    s->received++;
    s->late++;
    return RTP_SEQ_LATE;
}

uint64_t rtp_seq_expected(const struct rtp_seq *s)
{
    if (!s->started)
        return 0;
    return (uint64_t)(s->ext_max - s->ext_base) + 1u;
}

uint64_t rtp_seq_lost(const struct rtp_seq *s)
{
    uint64_t expected = rtp_seq_expected(s);
    uint64_t lost = expected > s->received ? expected - s->received : 0;
    return s->lost_prior + lost;
}

void rtp_jitter_init(struct rtp_jitter *j)
{
    memset(j, 0, sizeof *j);
}

void rtp_jitter_update(struct rtp_jitter *j, double arrival, uint32_t rtp_ts)
{
    if (j->have_prev) {
        /* D(i-1,i) = (Ri - Ri-1) - (Si - Si-1), the timestamp difference taken modulo 2^32 */
        double d = (arrival - j->prev_arrival) - (double)diff32(rtp_ts - j->prev_ts);
        if (d < 0)
            d = -d;
        j->jitter += (d - j->jitter) / 16.0;
    }
    j->have_prev = 1;
    j->prev_arrival = arrival;
    j->prev_ts = rtp_ts;
}

void rtp_jitter_q4_init(struct rtp_jitter_q4 *j)
{
    memset(j, 0, sizeof *j);
}

void rtp_jitter_q4_update(struct rtp_jitter_q4 *j, uint32_t arrival, uint32_t rtp_ts)
{
    uint32_t transit = arrival - rtp_ts;
    if (j->have_prev) {
        int64_t d = diff32(transit - j->prev_transit);
        if (d < 0)
            d = -d;
        int64_t q = (int64_t)j->jitter_q4 + d - (((int64_t)j->jitter_q4 + 8) >> 4);
        j->jitter_q4 = q > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)q;
    }
    j->have_prev = 1;
    j->prev_transit = transit;
}
