/* RTP receive statistics, sans-IO (RFC 3550 appendices A.1, A.3 and A.8).
 *
 * rtp_seq follows A.1 (extended sequence numbers, MAX_DROPOUT/MAX_MISORDER,
 * resynchronisation after two sequential packets past a large jump) without
 * the probation step: the first packet of a source is accepted at once, as a
 * test tool wants to count from the first packet.  On top of A.1 it tells
 * duplicates from reordered packets with a bitmap of the last
 * RTP_SEQ_WINDOW extended sequence numbers, so that duplicates do not hide
 * losses in the A.3 count.
 *
 * rtp_jitter is the A.8 interarrival jitter: J += (|D| - J) / 16 with D the
 * difference of relative transit times of two consecutive arrivals, in RTP
 * timestamp units.  rtp_jitter_q4 is the A.8 integer variant (kept scaled by
 * 16), the value an RTCP report block carries.
 */
#ifndef PYSIPTEST_RTP_RTP_STATS_H
#define PYSIPTEST_RTP_RTP_STATS_H

#include <stdint.h>

#define RTP_SEQ_MOD 65536
#define RTP_MAX_DROPOUT 3000
#define RTP_MAX_MISORDER 100
#define RTP_SEQ_WINDOW 128 /* > RTP_MAX_MISORDER, a multiple of 64 */

enum rtp_seq_result {
    RTP_SEQ_FIRST,     /* first packet of the source */
    RTP_SEQ_IN_ORDER,  /* newer than every packet so far (possibly after a gap) */
    RTP_SEQ_LATE,      /* older than the newest, seen for the first time: reordered */
    RTP_SEQ_DUPLICATE, /* seen before */
    RTP_SEQ_JUMP,      /* a jump of MAX_DROPOUT or more: not counted until confirmed */
    RTP_SEQ_RESYNC,    /* second sequential packet after a jump: the source restarted */
};

struct rtp_seq {
    int started;
    uint16_t max_seq;     /* highest sequence number seen */
    int64_t ext_max;      /* extended highest sequence number (cycles + max_seq) */
    int64_t ext_base;     /* extended sequence number of the first packet */
    uint32_t bad_seq;     /* the sequence number that confirms a jump; RTP_SEQ_MOD + 1 when none */
    uint64_t received;    /* distinct packets since the last (re)start */
    uint64_t lost_prior;  /* losses counted before the last resynchronisation */
    uint64_t late;        /* reordered packets */
    uint64_t duplicates;  /* packets seen twice or more */
    uint64_t seen[RTP_SEQ_WINDOW / 64]; /* bit ext % WINDOW: received, for ext in (ext_max - WINDOW, ext_max] */
};

void rtp_seq_init(struct rtp_seq *s);
/* Account for one received packet with sequence number seq. */
enum rtp_seq_result rtp_seq_update(struct rtp_seq *s, uint16_t seq);
/* A.3: packets expected since the last (re)start: ext_max - ext_base + 1 (0 before the first packet). */
uint64_t rtp_seq_expected(const struct rtp_seq *s);
/* A.3: cumulative packets lost, including those before a resynchronisation; never negative. */
uint64_t rtp_seq_lost(const struct rtp_seq *s);

struct rtp_jitter {
    int have_prev;
    double prev_arrival; /* timestamp units */
    uint32_t prev_ts;
    double jitter; /* timestamp units */
};

void rtp_jitter_init(struct rtp_jitter *j);
/* One arrival: arrival time converted to timestamp units (any origin), and the packet's RTP timestamp. */
void rtp_jitter_update(struct rtp_jitter *j, double arrival, uint32_t rtp_ts);

struct rtp_jitter_q4 {
    int have_prev;
    uint32_t prev_transit;
    uint32_t jitter_q4; /* jitter * 16; the report block carries jitter_q4 >> 4 */
};

void rtp_jitter_q4_init(struct rtp_jitter_q4 *j);
/* Integer variant: arrival in whole timestamp units (modulo 2^32). */
void rtp_jitter_q4_update(struct rtp_jitter_q4 *j, uint32_t arrival, uint32_t rtp_ts);

#endif
