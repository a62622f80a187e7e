/* The RTP media engine: one thread, one timer wheel, many streams.
 *
 * A struct media owns a media thread that sends and receives RTP for every
 * stream it holds.  Sending is scheduled on a timer wheel (1 ms slots), never
 * with a thread or a sleep per stream.  Other threads talk to the media thread
 * through a command queue (protected by media->cmd_lock, woken by an
 * eventfd); statistics are read from a per-stream snapshot under the stream
 * table lock.  Plain C11, no Python.
 */
#ifndef PYSIPTEST_RTP_MEDIA_H
#define PYSIPTEST_RTP_MEDIA_H

#include <stddef.h>
#include <stdint.h>

enum media_source {
    MEDIA_SRC_SILENCE = 0, /* G.711 silence */
    MEDIA_SRC_TONE,        /* a sine tone at tone_hz, G.711 encoded */
    MEDIA_SRC_ECHO,        /* send back what arrives (payload as received, own SSRC/seq/ts) */
    MEDIA_SRC_NONE,        /* receive only */
};

struct media_stream_cfg {
    char remote_host[64];  /* numeric IPv4 or IPv6 address */
    uint16_t remote_port;
    int payload_type;      /* 0 = PCMU, 8 = PCMA */
    uint32_t ptime_ms;     /* packetisation interval, default 20 */
    enum media_source source;
    double tone_hz;        /* for MEDIA_SRC_TONE */
    double tone_dbov;      /* level, default -10 */
};

/* Receive and send statistics of one stream; a consistent snapshot. */
struct media_stats {
    uint64_t tx_packets;
    uint64_t tx_bytes;       /* RTP payload bytes */
    uint64_t rx_packets;
    uint64_t rx_bytes;       /* RTP payload bytes */
    uint64_t rx_lost;        /* expected - received, by extended sequence number (RFC 3550 A.3), never negative */
    uint64_t rx_out_of_order;
    uint64_t rx_duplicates;
    uint64_t rx_invalid;     /* datagrams that are not RTP version 2 or too short */
    double jitter_ms;        /* RFC 3550 A.8 interarrival jitter, in ms */
    double max_gap_ms;       /* largest interval between two received packets */
    uint64_t first_rx_ms;    /* monotonic ms of the first / last received packet, 0 if none */
    uint64_t last_rx_ms;
    uint32_t rx_ssrc;
    int rx_payload_type;     /* -1 if nothing received */
    int sending;             /* 1 while the stream is started */
    uint64_t tx_errors;      /* packets that could not be sent (sendto failed: buffer full, unreachable, ...) */
};

struct media;

/* Create the media engine and start its thread. NULL on failure with err filled (errlen bytes). */
struct media *media_new(char *err, size_t errlen);
/* Stop the thread, close every stream, free everything. Safe with NULL.  No other call on m may be
 * running or follow (use media_shutdown first when other threads may still hold m). */
void media_free(struct media *m);
/* Stop the thread and close every stream, but keep m itself: every later call on m fails with
 * -ESHUTDOWN (media_stream_count returns 0).  Thread-safe and idempotent; a call that races with a
 * shutdown fails cleanly.  media_free must still be called. */
void media_shutdown(struct media *m);

#define MEDIA_PTIME_MIN 5u   /* ms */
#define MEDIA_PTIME_MAX 200u /* ms */

/* Open a stream bound to host:port (port 0 picks an even free port). Returns 0 and sets *id, *bound_port,
 * or a negative errno with err filled. The stream receives (and counts) from the moment it is open. */
int media_stream_open(struct media *m, const char *host, uint16_t port, uint32_t *id, uint16_t *bound_port, char *err,
                      size_t errlen);
/* Start (or re-target) sending per cfg (borrowed). -ENOENT for an unknown id, -EINVAL for a bad cfg. */
int media_stream_start(struct media *m, uint32_t id, const struct media_stream_cfg *cfg, char *err, size_t errlen);
/* Stop sending; the stream keeps receiving and counting. */
int media_stream_stop(struct media *m, uint32_t id);
/* Close the socket and forget the stream. */
int media_stream_close(struct media *m, uint32_t id);
/* Copy the stream's current statistics. -ENOENT for an unknown id. */
int media_stream_stats(struct media *m, uint32_t id, struct media_stats *out);
/* Number of open streams. */
size_t media_stream_count(struct media *m);

/* G.711 codecs (ITU-T G.711), exposed for tests and generators. */
uint8_t g711_ulaw_encode(int16_t pcm);
int16_t g711_ulaw_decode(uint8_t u);
uint8_t g711_alaw_encode(int16_t pcm);
int16_t g711_alaw_decode(uint8_t a);

#endif
