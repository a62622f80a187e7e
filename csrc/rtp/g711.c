/* G.711 mu-law and A-law (ITU-T G.711), written from the segment tables of the
 * Recommendation.  mu-law works on the 14-bit magnitude with a bias of 33 (here on the
 * 16-bit scale: 132, clipped at 32635); A-law on the 13-bit magnitude with the even bits
 * inverted (XOR 0x55).  Decoders return the segment mid-point on the 16-bit scale. */
#include "rtp/media.h"

#define ULAW_BIAS 132   /* 33 on the 14-bit scale */
#define ULAW_CLIP 32635 /* 32767 - ULAW_BIAS */

uint8_t g711_ulaw_encode(int16_t pcm)
{
    int v = pcm;
    unsigned sign = 0;
    if (v < 0) {
        sign = 0x80;
        v = -v; /* int, so -32768 is fine */
    }
    if (v > ULAW_CLIP)
        v = ULAW_CLIP;
    v += ULAW_BIAS; /* now in [132, 32767]: bit 7 .. bit 14 is the highest set bit */
    unsigned exp = 7;
    for (int mask = 0x4000; exp > 0 && (v & mask) == 0; mask >>= 1)
        exp--;
    unsigned mant = ((unsigned)v >> (exp + 3)) & 0x0Fu;
    return (uint8_t)~(sign | (exp << 4) | mant);
}

int16_t g711_ulaw_decode(uint8_t u)
{
    unsigned c = (unsigned)(uint8_t)~u;
    unsigned exp = (c >> 4) & 7u;
    unsigned mant = c & 0x0Fu;
    int mag = (int)(((mant << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    return (int16_t)((c & 0x80u) ? -mag : mag);
}

uint8_t g711_alaw_encode(int16_t pcm)
{
    int v = pcm >> 3; /* 13-bit sample; arithmetic shift of a negative int16 promoted to int */
    unsigned sign;
    int mag;
    if (v >= 0) {
        sign = 0x80; /* A-law sets the sign bit for positive samples */
        mag = v;
    } else {
        sign = 0;
        mag = -v - 1; /* -1 .. -4096 -> 0 .. 4095 */
    }
    unsigned exp = 0, mant;
    if (mag < 32) {
        mant = (unsigned)mag >> 1; /* segment 0: steps of 2 */
    } else {
        exp = 1;
        while (exp < 7 && mag >= (32 << exp))
            exp++;
        mant = ((unsigned)mag >> exp) & 0x0Fu; /* segment e: [16 << e, 32 << e), steps of 1 << e */
    }
    return (uint8_t)((sign | (exp << 4) | mant) ^ 0x55u);
}

int16_t g711_alaw_decode(uint8_t a)
{
    unsigned c = a ^ 0x55u;
    unsigned exp = (c >> 4) & 7u;
    unsigned mant = c & 0x0Fu;
    int mag;
    if (exp == 0)
        mag = (int)(mant << 1) + 1;
    else
        mag = (int)(((mant << 1) + 33u) << (exp - 1)); /* (16 + m) << e, plus half a step */
    mag <<= 3;
    return (int16_t)((c & 0x80u) ? mag : -mag);
}
