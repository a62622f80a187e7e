/* RFC 4733 telephone-events; see dtmf.h. */
#include "rtp/dtmf.h"

#include <errno.h>
#include <string.h>

int dtmf_event_code(char digit)
{
    if (digit >= '0' && digit <= '9')
        return digit - '0';
    if (digit == '*')
        return 10;
    if (digit == '#')
        return 11;
    if (digit >= 'A' && digit <= 'D')
        return 12 + (digit - 'A');
    if (digit >= 'a' && digit <= 'd')
        return 12 + (digit - 'a');
    return -1;
}

char dtmf_digit(uint8_t code)
{
    static const char digits[] = "0123456789*#ABCD";
    return code < 16 ? digits[code] : '?';
}

int dtmf_tx_begin(struct dtmf_tx *t, uint8_t code, uint8_t volume, uint32_t total, uint32_t ts)
{
    if (volume > 63 || total == 0 || total > 0xffff)
        return -EINVAL;
    memset(t, 0, sizeof *t);
    t->active = 1;
    t->code = code;
    t->volume = volume;
    t->total = total;
    t->ts = ts;
    return 0;
}

static void put(uint8_t out[DTMF_PAYLOAD_LEN], const struct dtmf_tx *t, int end)
{
    out[0] = t->code;
    out[1] = (uint8_t)((end ? 0x80 : 0) | (t->volume & 0x3f));
    out[2] = (uint8_t)(t->duration >> 8);
    out[3] = (uint8_t)t->duration;
}

int dtmf_tx_next(struct dtmf_tx *t, uint32_t step, uint8_t out[DTMF_PAYLOAD_LEN], int *marker)
{
    if (!t->active)
        return 0;
    *marker = !t->started;
    t->started = 1;
    if (t->duration < t->total) {
        uint32_t d = t->duration + step;
        t->duration = d < t->total ? d : t->total;
        put(out, t, t->duration == t->total);
        if (t->duration == t->total)
            t->ends_sent = 1;
        return 1;
    }
    if (t->ends_sent < DTMF_END_REPEATS) {
        t->ends_sent++;
        put(out, t, 1);
        *marker = 0;
        return 1;
    }
    t->active = 0;
    return 0;
}

int dtmf_rx_packet(struct dtmf_rx *d, const uint8_t *p, size_t len, uint32_t ts, uint64_t now_ms)
{
    if (len < DTMF_PAYLOAD_LEN)
        return -EBADMSG;
    d->packets++;
    uint8_t code = p[0];
    int end = (p[1] & 0x80) != 0;
    uint8_t volume = p[1] & 0x3f;
    uint32_t duration = (uint32_t)p[2] << 8 | p[3];
    struct dtmf_event *cur = d->total ? &d->ev[(d->total - 1) % DTMF_RX_EVENTS] : NULL;
    if (cur != NULL && cur->ts == ts && cur->code == code) {
        if (duration > cur->duration)
            cur->duration = duration;
        cur->ended |= end;
        cur->volume = volume;
        return 0;
    }
    struct dtmf_event *e = &d->ev[d->total % DTMF_RX_EVENTS];
    e->digit = dtmf_digit(code);
    e->code = code;
    e->volume = volume;
    e->ended = end;
    e->duration = duration;
    e->ts = ts;
    e->at_ms = now_ms;
    d->total++;
    return 1;
}
