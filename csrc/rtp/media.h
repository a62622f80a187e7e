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

#include "rtp/impair.h"
#include "rtp/srtp_ctx.h"

enum media_source {
    MEDIA_SRC_SILENCE = 0, /* G.711 silence */
    MEDIA_SRC_TONE,        /* a sine tone at tone_hz, G.711 encoded */
    MEDIA_SRC_ECHO,        /* send back what arrives (payload as received, own SSRC/seq/ts) */
    MEDIA_SRC_NONE,        /* receive only */
    MEDIA_SRC_PCAP,        /* replay the RTP of a capture file (pcap_path) with its recorded timing */
};

#define MEDIA_PCAP_PATH_MAX 512

struct media_stream_cfg {
    char remote_host[64];  /* numeric IPv4 or IPv6 address */
    uint16_t remote_port;
    int payload_type;      /* 0 = PCMU, 8 = PCMA */
    uint32_t ptime_ms;     /* packetisation interval, default 20 */
    enum media_source source;
    double tone_hz;        /* for MEDIA_SRC_TONE */
    double tone_dbov;      /* level, default -10 */
    char pcap_path[MEDIA_PCAP_PATH_MAX]; /* MEDIA_SRC_PCAP: the capture, read when the stream starts */
    int pcap_loop;         /* 1: start over after the last packet */
    int dtmf_pt;           /* telephone-event payload type (RFC 4733) sent and detected; 0 means 101 */
    struct impair_cfg impair; /* send-side jitter, loss, duplication, reordering (all zero: none) */
    uint32_t rtcp_interval_ms; /* 0: no RTCP; else an SR/RR every this many ms */
    int rtcp_mux;          /* 1: RTCP on the RTP port (RFC 5761); 0: on RTP port + 1 */
    enum srtp_suite srtp_suite; /* SRTP_SUITE_NONE: plain RTP */
    uint8_t srtp_tx_key[SRTP_KEY_MAX]; /* our master key + salt (srtp_suite_key_len bytes) */
    uint8_t srtp_rx_key[SRTP_KEY_MAX]; /* the peer's */
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
    uint64_t tx_dropped;     /* impairment: packets not sent on purpose (loss) */
    uint64_t tx_duplicated;  /* impairment: packets sent twice */
    uint64_t tx_reordered;   /* impairment: packets held back behind the next */
    uint64_t tx_dtmf_events; /* telephone-events completed */
    uint64_t rx_dtmf_events; /* telephone-events detected (media_stream_dtmf_events lists the newest) */
    uint64_t rx_auth_fail;   /* SRTP/SRTCP packets that failed authentication */
    uint64_t rx_replay;      /* SRTP/SRTCP packets refused as replays */
    uint64_t rtcp_tx;        /* RTCP compound packets sent and received */
    uint64_t rtcp_rx;
    int peer_report;         /* 1 once the peer sent a report block about us; then: */
    double peer_fraction_lost; /* 0..1, the peer's last report */
    int64_t peer_cum_lost;
    double peer_jitter_ms;
    double rtt_ms;           /* round trip from the peer's LSR/DLSR (RFC 3550 6.4.1), -1 before the first */
    uint64_t pcap_loops;     /* completed rounds of a looping capture */
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

/* Run the media thread under SCHED_FIFO at priority 1..99 (0: back to normal scheduling), so that other
 * busy processes on the machine do not delay its packets.  The kernel's real-time throttling (by default
 * 95% of each second) still leaves the rest of the machine some time.  -EPERM without CAP_SYS_NICE,
 * -EINVAL, -ESHUTDOWN; err filled. */
int media_set_realtime(struct media *m, int priority, char *err, size_t errlen);

#define MEDIA_PTIME_MIN 5u   /* ms */
#define MEDIA_PTIME_MAX 200u /* ms */

/* Open a stream bound to host:port (port 0 picks an even free port). Returns 0 and sets *id, *bound_port,
 * or a negative errno with err filled. The stream receives (and counts) from the moment it is open. */
int media_stream_open(struct media *m, const char *host, uint16_t port, uint32_t *id, uint16_t *bound_port, char *err,
                      size_t errlen);
/* Start (or re-target) sending per cfg (borrowed). -ENOENT for an unknown id, -EINVAL for a bad cfg. */
int media_stream_start(struct media *m, uint32_t id, const struct media_stream_cfg *cfg, char *err, size_t errlen);
/* Start n streams (ids[i] with cfgs[i], both borrowed) with one hand-over to the media thread.  Their
 * first packets are spread over one ptime (stream i of n starts i * ptime / n ms later), so that streams
 * started together do not all fall due in the same millisecond of every ptime.  0 when every
 * one started; else a negative code, *failed = the index of the first stream that did not start (with err),
 * and the streams before it in a batch that ran are started.  Streams after it may have started too. */
int media_stream_start_many(struct media *m, size_t n, const uint32_t *ids, const struct media_stream_cfg *cfgs,
                            size_t *failed, char *err, size_t errlen);
/* Stop sending; the stream keeps receiving and counting. */
int media_stream_stop(struct media *m, uint32_t id);
/* Close the socket and forget the stream. */
int media_stream_close(struct media *m, uint32_t id);
/* Stop / close the n streams of ids (borrowed) with one hand-over to the media thread.  Every id is acted
 * on; 0 when each was known, else the first failure's code (-ENOENT) with *failed its index (n when none
 * failed).  -ESHUTDOWN when the engine is closed (nothing done), -ENOMEM. */
int media_stream_stop_many(struct media *m, size_t n, const uint32_t *ids, size_t *failed);
int media_stream_close_many(struct media *m, size_t n, const uint32_t *ids, size_t *failed);
/* Copy the stream's current statistics. -ENOENT for an unknown id. */
int media_stream_stats(struct media *m, uint32_t id, struct media_stats *out);
/* Number of open streams. */
size_t media_stream_count(struct media *m);

#define MEDIA_DTMF_MAX_DIGITS 64
/* Queue telephone-events (RFC 4733) on a started stream: digits of "0-9*#A-D", each lasting
 * duration_ms (10..5000) at volume 0..63 (-dBm0), with a pause between them.  While an event is
 * sent it replaces the stream's audio.  -EINVAL (bad digit, too many queued), -ENOENT. */
int media_stream_dtmf(struct media *m, uint32_t id, const char *digits, uint32_t duration_ms, uint8_t volume,
                      char *err, size_t errlen);

struct dtmf_event;
/* Copy up to max of the newest received telephone-events, oldest first; *n gets the count. */
int media_stream_dtmf_events(struct media *m, uint32_t id, struct dtmf_event *out, size_t max, size_t *n);

struct tone_result;
/* Goertzel: the level of hz in the newest window_ms (1..1024) of received G.711 audio; when no audio
 * arrived for window_ms + 100 ms (the far side stopped sending, or its packets fail SRTP), silence. */
int media_stream_tone(struct media *m, uint32_t id, double hz, uint32_t window_ms, struct tone_result *out);
/* The received G.711 audio, decoded: copy into out (max samples) the samples numbered since..total-1 of the
 * stream's ring (the newest TONE_RING_SAMPLES are kept, so an older since starts at the oldest kept one);
 * *total gets how many were received so far, *first the number of the first one copied, *n the count.
 * 0, -ENOENT, -ESHUTDOWN. */
int media_stream_samples(struct media *m, uint32_t id, uint64_t since, int16_t *out, size_t max, uint64_t *total,
                         uint64_t *first, size_t *n);

/* How late generated packets left against their schedule (start + k * ptime), over every stream
 * since the last reset: percentiles from a histogram of 10 us buckets (up to 50 ms), exact max. */
struct media_lateness {
    uint64_t count;
    double p50_us, p99_us, max_us;
};
int media_tx_lateness(struct media *m, int reset, struct media_lateness *out);

/* G.711 codecs (ITU-T G.711), exposed for tests and generators. */
uint8_t g711_ulaw_encode(int16_t pcm);
int16_t g711_ulaw_decode(uint8_t u);
uint8_t g711_alaw_encode(int16_t pcm);
int16_t g711_alaw_decode(uint8_t a);

#endif
