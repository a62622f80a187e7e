/* Media generators: G.711 silence and a sine tone, 8000 Hz.  Sans-IO: fill a payload buffer. */
#ifndef PYSIPTEST_RTP_GEN_H
#define PYSIPTEST_RTP_GEN_H

#include <stddef.h>
#include <stdint.h>

#define RTP_GEN_RATE 8000 /* samples per second (G.711) */
#define RTP_PT_PCMU 0
#define RTP_PT_PCMA 8

struct rtp_gen {
    int payload_type; /* RTP_PT_PCMU or RTP_PT_PCMA */
    int tone;         /* 0: silence, 1: sine tone */
    double phase;     /* in cycles, [0, 1) */
    double step;      /* cycles per sample: hz / RTP_GEN_RATE */
    double amplitude; /* peak, 16-bit linear scale */
};

/* Silence for payload_type (0 or 8).  Returns 0 or -EINVAL. */
int rtp_gen_init_silence(struct rtp_gen *g, int payload_type);
/* A sine of hz (0 < hz < 4000) at level dbov (<= 0; 0 dBov is the RMS of a full-scale square wave,
 * so the peak of the sine is 32767 * sqrt(2) * 10^(dbov/20), clipped at full scale).
 * Returns 0 or -EINVAL. */
int rtp_gen_init_tone(struct rtp_gen *g, int payload_type, double hz, double dbov);
/* Write n encoded samples to out (n bytes); the tone's phase carries over between calls. */
void rtp_gen_fill(struct rtp_gen *g, uint8_t *out, size_t n);
/* Advance the phase by n samples without producing them (skipped packets). */
void rtp_gen_skip(struct rtp_gen *g, uint64_t n);

#endif
