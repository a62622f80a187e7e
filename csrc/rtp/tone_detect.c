/* Goertzel tone detection; see tone_detect.h. */
#include "rtp/tone_detect.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "rtp/gen.h"
#include "rtp/media.h"

#define TONE_FULL_SCALE 32767.0

void tone_ring_push_g711(struct tone_ring *r, int payload_type, const uint8_t *p, size_t n)
{
    if (payload_type != RTP_PT_PCMU && payload_type != RTP_PT_PCMA)
        return;
    if (r->total > 0 && r->payload_type != payload_type)
        r->law_start = r->total;
    r->payload_type = payload_type;
    if (n > TONE_RING_SAMPLES) {
        p += n - TONE_RING_SAMPLES; /* only the newest fit */
        r->total += n - TONE_RING_SAMPLES;
        n = TONE_RING_SAMPLES;
    }
    size_t at = (size_t)(r->total % TONE_RING_SAMPLES);
    size_t first = TONE_RING_SAMPLES - at < n ? TONE_RING_SAMPLES - at : n;
    memcpy(r->code + at, p, first);
    memcpy(r->code, p + first, n - first);
    r->total += n;
}

static double to_dbov(double mean_square)
{
    if (mean_square <= 0.0)
        return -200.0;
    double db = 10.0 * log10(mean_square / (TONE_FULL_SCALE * TONE_FULL_SCALE));
    return db < -200.0 ? -200.0 : db;
}

int tone_detect(const struct tone_ring *r, double hz, uint32_t window, struct tone_result *out)
{
    if (!isfinite(hz) || hz <= 0.0 || hz >= RTP_GEN_RATE / 2.0 || window == 0)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    uint64_t n = window;
    if (n > TONE_RING_SAMPLES)
        n = TONE_RING_SAMPLES;
    if (n > r->total - tone_ring_oldest(r))
        n = r->total - tone_ring_oldest(r);
    out->samples = (uint32_t)n;
    if (n == 0) {
        out->level_dbov = out->tone_dbov = -200.0;
        out->silent = 1;
        return 0;
    }
    /* Goertzel at the exact frequency (not rounded to a bin), over the newest n samples */
    double w = 2.0 * M_PI * hz / RTP_GEN_RATE;
    double coeff = 2.0 * cos(w);
    double s1 = 0.0, s2 = 0.0, energy = 0.0;
    int alaw = r->payload_type == RTP_PT_PCMA;
    for (uint64_t i = r->total - n; i < r->total; i++) {
        uint8_t c = r->code[i % TONE_RING_SAMPLES];
        double x = alaw ? g711_alaw_decode(c) : g711_ulaw_decode(c);
        energy += x * x;
        double s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double re = s1 - s2 * cos(w), im = s2 * sin(w);
    double mag2 = re * re + im * im;
    double ms_total = energy / (double)n;
    double ms_tone = 2.0 * mag2 / ((double)n * (double)n); /* a sine of peak A gives A^2 / 2 */
    if (ms_tone > ms_total)
        ms_tone = ms_total;
    out->level_dbov = to_dbov(ms_total);
    out->tone_dbov = to_dbov(ms_tone);
    out->ratio = ms_total > 0.0 ? ms_tone / ms_total : 0.0;
    out->present = out->ratio >= TONE_PRESENT_RATIO && out->tone_dbov >= TONE_PRESENT_DBOV;
    out->silent = out->level_dbov < TONE_SILENCE_DBOV;
    return 0;
}

uint64_t tone_ring_oldest(const struct tone_ring *r)
{
    uint64_t oldest = r->total > TONE_RING_SAMPLES ? r->total - TONE_RING_SAMPLES : 0;
    return oldest > r->law_start ? oldest : r->law_start;
}

void tone_ring_decode(const struct tone_ring *r, uint64_t from, int16_t *out, size_t n)
{
    int alaw = r->payload_type == RTP_PT_PCMA;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = r->code[(from + i) % TONE_RING_SAMPLES];
        out[i] = alaw ? g711_alaw_decode(c) : g711_ulaw_decode(c);
    }
}
