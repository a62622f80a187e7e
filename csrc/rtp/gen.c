/* Silence and tone generators; see gen.h. */
#include "rtp/gen.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "rtp/media.h"

static const double GEN_PI = 3.14159265358979323846;

static uint8_t encode(int payload_type, int16_t pcm)
{
    return payload_type == RTP_PT_PCMA ? g711_alaw_encode(pcm) : g711_ulaw_encode(pcm);
}

int rtp_gen_init_silence(struct rtp_gen *g, int payload_type)
{
    if (payload_type != RTP_PT_PCMU && payload_type != RTP_PT_PCMA)
        return -EINVAL;
    memset(g, 0, sizeof *g);
    g->payload_type = payload_type;
    return 0;
}

int rtp_gen_init_tone(struct rtp_gen *g, int payload_type, double hz, double dbov)
{
    if (payload_type != RTP_PT_PCMU && payload_type != RTP_PT_PCMA)
        return -EINVAL;
    if (!isfinite(hz) || hz <= 0.0 || hz >= RTP_GEN_RATE / 2.0)
        return -EINVAL;
    if (!isfinite(dbov) || dbov > 0.0)
        return -EINVAL;
    memset(g, 0, sizeof *g);
    g->payload_type = payload_type;
    g->tone = 1;
    g->step = hz / RTP_GEN_RATE;
    double peak = 32767.0 * sqrt(2.0) * pow(10.0, dbov / 20.0);
    g->amplitude = peak > 32767.0 ? 32767.0 : peak;
    return 0;
}

void rtp_gen_fill(struct rtp_gen *g, uint8_t *out, size_t n)
{
    if (!g->tone) {
        memset(out, encode(g->payload_type, 0), n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = g->amplitude * sin(2.0 * GEN_PI * g->phase);
        out[i] = encode(g->payload_type, (int16_t)lrint(v));
        g->phase += g->step;
        if (g->phase >= 1.0)
            g->phase -= 1.0;
    }
}

void rtp_gen_skip(struct rtp_gen *g, uint64_t n)
{
    if (!g->tone)
        return;
    double p = g->phase + g->step * (double)n;
    g->phase = p - floor(p);
}
