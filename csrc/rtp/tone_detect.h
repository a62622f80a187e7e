/* Tone and silence detection on received G.711 audio (a Goertzel filter).
 * Sans-IO: the G.711 bytes go into a ring as they arrived (a copy, no decoding on the media
 * thread's receive path); a query decodes and looks at the newest samples. */
#ifndef PYSIPTEST_RTP_TONE_DETECT_H
#define PYSIPTEST_RTP_TONE_DETECT_H

#include <stddef.h>
#include <stdint.h>

#define TONE_RING_SAMPLES 8192u /* 1024 ms at 8000 Hz, a power of two */
#define TONE_PRESENT_RATIO 0.5  /* the tone holds at least half the power ... */
#define TONE_PRESENT_DBOV (-50.0) /* ... and is louder than this */
#define TONE_SILENCE_DBOV (-55.0) /* quieter than this overall is silence */

struct tone_ring {
    uint64_t total;                    /* samples pushed so far (never goes back: readers count on it) */
    uint64_t law_start;                /* number of the first sample in the current law */
    int payload_type;                  /* the law of every sample in the ring: 0 mu-law, 8 A-law */
    uint8_t code[TONE_RING_SAMPLES];   /* G.711 byte of sample i lives at code[i % TONE_RING_SAMPLES] */
};

/* Copy n G.711 bytes (payload type 0 mu-law or 8 A-law) into the ring; other types are ignored.
 * A change of law starts the ring afresh at law_start = total (older samples could not be decoded with the
 * new law, so nothing before law_start is read again). */
void tone_ring_push_g711(struct tone_ring *r, int payload_type, const uint8_t *p, size_t n);

/* The number of the oldest sample still readable: the newest TONE_RING_SAMPLES, none before law_start. */
uint64_t tone_ring_oldest(const struct tone_ring *r);
/* Decode samples numbered from..from+n-1 of the ring into out (the caller keeps them between
 * tone_ring_oldest() and total). */
void tone_ring_decode(const struct tone_ring *r, uint64_t from, int16_t *out, size_t n);

struct tone_result {
    uint32_t samples;     /* samples looked at (fewer than asked when fewer arrived) */
    double level_dbov;    /* RMS level of all the audio, dBov (0 dBov: a full-scale square wave) */
    double tone_dbov;     /* level of the component at hz */
    double ratio;         /* tone power / total power, 0..1 */
    int present;          /* ratio >= TONE_PRESENT_RATIO and tone_dbov >= TONE_PRESENT_DBOV */
    int silent;           /* level_dbov < TONE_SILENCE_DBOV (or no audio at all) */
};

/* Look at the newest `window` samples (at most TONE_RING_SAMPLES) for a tone of hz (0 < hz < 4000).
 * 0 or -EINVAL. */
int tone_detect(const struct tone_ring *r, double hz, uint32_t window, struct tone_result *out);

#endif
