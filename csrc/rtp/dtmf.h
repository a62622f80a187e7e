/* RFC 4733 telephone-events (DTMF): the sender's packet sequence and the receiver's event list.
 * Sans-IO: payload bytes in and out, no clock but the one passed in. */
#ifndef PYSIPTEST_RTP_DTMF_H
#define PYSIPTEST_RTP_DTMF_H

#include <stddef.h>
#include <stdint.h>

#define DTMF_PAYLOAD_LEN 4u
#define DTMF_END_REPEATS 3u    /* the end packet is sent three times (RFC 4733 2.5.1.4) */
#define DTMF_RX_EVENTS 32u     /* received events kept per stream (the newest) */
#define DTMF_DEFAULT_PT 101

/* Event code of a digit: 0-9, '*' = 10, '#' = 11, A-D = 12-15; -1 for anything else. */
int dtmf_event_code(char digit);
/* The digit of an event code 0..15, '?' for others. */
char dtmf_digit(uint8_t code);

/* One event being sent: each packet interval produces one packet, all with the event's
 * timestamp; the first has the marker bit; the duration grows by one interval per packet;
 * the last carries the E bit and is sent DTMF_END_REPEATS times. */
struct dtmf_tx {
    int active;
    uint8_t code, volume;     /* volume: 0..63, as -dBm0 */
    uint32_t ts;              /* the event's RTP timestamp */
    uint32_t total;           /* duration to reach, timestamp units */
    uint32_t duration;        /* duration in the last packet */
    uint32_t ends_sent;
    int started;
};

/* Begin an event (code 0..255, volume 0..63, total >= 1 unit) at timestamp ts.  0 or -EINVAL. */
int dtmf_tx_begin(struct dtmf_tx *t, uint8_t code, uint8_t volume, uint32_t total, uint32_t ts);
/* The next packet for an interval of `step` units: writes 4 bytes to out, sets *marker.
 * Returns 1 when a packet was written, 0 when the event is over (t->active is then 0). */
int dtmf_tx_next(struct dtmf_tx *t, uint32_t step, uint8_t out[DTMF_PAYLOAD_LEN], int *marker);

struct dtmf_event {
    char digit;
    uint8_t code, volume;
    int ended;          /* an E-bit packet was received */
    uint32_t duration;  /* largest duration seen, timestamp units */
    uint32_t ts;        /* the event's RTP timestamp */
    uint64_t at_ms;     /* when its first packet arrived */
};

struct dtmf_rx {
    uint64_t total;                        /* events detected so far */
    struct dtmf_event ev[DTMF_RX_EVENTS];  /* ev[i % DTMF_RX_EVENTS] is event i */
    uint64_t packets;                      /* telephone-event packets accounted */
};

/* Account one telephone-event payload with its RTP timestamp.  A new timestamp (or event
 * code) starts a new event; repeats and retransmissions only update it.  Returns 1 for a
 * new event, 0 for an update, -EBADMSG for a payload shorter than 4 bytes. */
int dtmf_rx_packet(struct dtmf_rx *d, const uint8_t *payload, size_t len, uint32_t ts, uint64_t now_ms);

#endif
