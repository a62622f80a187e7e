/* Internals of the media engine shared by media.c (thread, commands, table), media_tx.c (the
 * send path) and media_rx.c (the receive path).  Not part of the API; see media.h. */
#ifndef PYSIPTEST_RTP_MEDIA_INT_H
#define PYSIPTEST_RTP_MEDIA_INT_H

#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "rtp/dtmf.h"
#include "rtp/gen.h"
#include "rtp/impair.h"
#include "rtp/media.h"
#include "rtp/pcap_src.h"
#include "rtp/rtcp.h"
#include "rtp/rtp_packet.h"
#include "rtp/rtp_stats.h"
#include "rtp/srtp_ctx.h"
#include "rtp/timerwheel.h"
#include "rtp/tone_detect.h"

#define MEDIA_RX_BATCH 16
#define MEDIA_RX_BUF 2048          /* larger datagrams are not RTP we can use: counted invalid */
#define MEDIA_RX_MAX_BATCHES 64    /* per readiness: a flooded socket cannot starve the others (level-triggered) */
#define MEDIA_MAX_LATE_MS 100      /* behind schedule by more than this: skip packets instead of bursting */
#define MEDIA_SAMPLES_PER_MS (RTP_GEN_RATE / 1000)
/* audio older than the window asked for plus this is not "heard" any more (the far side stopped sending) */
#define MEDIA_TONE_STALE_MS 100u
#define MEDIA_MAX_PAYLOAD 1600u    /* the largest payload sent (a capture's, an echoed one) */
#define MEDIA_TX_BUF (RTP_HEADER_LEN + MEDIA_MAX_PAYLOAD + SRTP_TRAILER_MAX)
#define MEDIA_PENDING_MAX 32       /* packets held back by jitter/reordering per stream */
#define MEDIA_DTMF_GAP_MS 60       /* audio between two queued digits */
#define MEDIA_CNAME "pysiptest"
#define MEDIA_LAT_BUCKETS 5000u    /* 10 us each: 0..50 ms, the last one open-ended */
#define MEDIA_TX_BATCH 128         /* packets gathered before one flush (sendmmsg per run of one socket) */

/* What an epoll event names: a stream's RTP or RTCP socket. */
struct media_fdref {
    struct media_stream *s;
    int rtcp;
    /* how the socket was read last (media thread only): see media_rx_ready */
    uint64_t last_round;
    uint32_t last_n;
};

struct media_pending {
    uint64_t due_us;
    size_t len;
    struct sockaddr_storage to;
    socklen_t tolen;
    uint8_t buf[MEDIA_TX_BUF];
};

/* A packet in the send queue (media thread only). */
struct media_txq_entry {
    struct media_stream *s;
    int fd;
    int rtcp;             /* an RTCP report (counts rtcp_tx) rather than an RTP packet */
    size_t len;           /* bytes in the entry's buffer */
    size_t payload_len;   /* RTP payload bytes, for the statistics */
    uint64_t due_ns;      /* a generated packet's place in its schedule (for lateness); 0: not measured */
    socklen_t tolen;
    struct sockaddr_storage to;
};

struct media_stream {
    uint32_t id;
    int fd;
    int rtcp_fd;                /* -1 unless RTCP runs on its own port */
    int family;                 /* AF_INET or AF_INET6: the bound socket's */
    struct media_stream *hnext; /* hash chain of media->buckets */
    struct media_fdref ref_rtp, ref_rtcp;
    struct twheel_timer timer;  /* next packet of a generator, capture or telephone-event */
    struct twheel_timer jtimer; /* next held-back packet (impairments) */
    struct twheel_timer rtimer; /* next RTCP report */

    /* Sending: media thread only. */
    int sending;
    enum media_source source;
    uint8_t payload_type;
    uint32_t ptime_ms;
    uint32_t samples; /* per packet */
    struct sockaddr_storage remote;
    socklen_t remote_len; /* 0: echo to each packet's source */
    struct rtp_gen gen;
    uint64_t send_start_ms; /* packet k is due at send_start_ms + k * ptime_ms: no drift */
    uint64_t send_k;
    uint32_t ssrc;
    uint16_t seq;
    uint32_t ts;
    int marker_next;
    int sent_any;
    uint64_t last_send_ms;
    int echo_have_offset;
    uint32_t echo_ts_offset; /* own timestamp = received timestamp + offset */
    uint32_t tx_octets;      /* RTP payload octets sent, for the SR */

    /* capture replay */
    struct pcap_clip *clip; /* owned */
    size_t clip_i;          /* next packet */
    uint64_t clip_round;
    int clip_loop;
    uint64_t clip_start_us;
    uint32_t clip_ts_base;

    /* telephone-events to send */
    uint8_t dtmf_pt;
    struct dtmf_tx dtmf;
    char dtmf_queue[MEDIA_DTMF_MAX_DIGITS];
    size_t dtmf_qhead, dtmf_qlen;
    uint32_t dtmf_total;   /* timestamp units per event */
    uint8_t dtmf_volume;
    uint64_t dtmf_next_ms; /* no new digit before this */

    /* impairments */
    int impaired;
    struct impair impair;
    struct media_pending *pend; /* MEDIA_PENDING_MAX entries, allocated with the impairment; owned */
    size_t npend;

    /* SRTP */
    int srtp_on;
    struct srtp_pair srtp;

    /* RTCP */
    uint32_t rtcp_interval_ms;
    int rtcp_mux;
    struct sockaddr_storage rtcp_remote;
    socklen_t rtcp_remote_len;
    uint64_t rr_expected_prior, rr_received_prior;
    uint32_t last_sr_mid;   /* the peer's last SR, for LSR */
    uint64_t last_sr_ns;

    /* Receiving: media thread only. */
    struct rtp_seq rx_seq;
    struct rtp_jitter rx_jitter;
    int rx_have_ssrc;
    uint64_t rx_last_ns;

    /* Guarded by media->table_lock: written by the media thread, read by other threads. */
    struct media_stats stats;
    struct dtmf_rx dtmf_rx;
    struct tone_ring *ring; /* allocated at the first G.711 packet; owned */
    uint64_t ring_last_ms;  /* when audio last went into the ring (media clock) */
};

enum media_cmd_op { MEDIA_CMD_OPEN, MEDIA_CMD_START, MEDIA_CMD_STOP, MEDIA_CMD_CLOSE, MEDIA_CMD_DTMF };

struct media_cmd {
    enum media_cmd_op op;
    uint32_t id;                  /* START/STOP/CLOSE/DTMF: the stream; OPEN: set by the media thread */
    struct media_stream *stream;  /* OPEN: handed to the media thread, which takes it on success */
    struct media_stream_cfg cfg;  /* START: validated by the caller */
    struct sockaddr_storage remote;
    socklen_t remote_len;         /* START: 0 when echoing to the source */
    struct pcap_clip *clip;       /* START: loaded by the caller; the media thread takes it (sets NULL) */
    struct srtp_pair srtp;        /* START: made by the caller; taken likewise (tx set to NULL) */
    struct media_pending *pend;   /* START: allocated by the caller when impaired; taken likewise */
    uint32_t phase_ms;            /* START: the first packet (and RTCP report) this much later: start_many
                                   * spreads a batch over one ptime so that its streams do not all fall due
                                   * in the same millisecond */
    const char *digits;           /* DTMF */
    uint32_t duration_ms;
    uint8_t volume;
    char *err;                    /* caller's buffer for a reason, may be NULL */
    size_t errlen;
    int result;                   /* set by the media thread before done */
    int done;                     /* guarded by cmd_lock */
    struct media_cmd *next;       /* guarded by cmd_lock */
};

struct media {
    pthread_t thread;
    int epfd;
    int evfd; /* eventfd: commands are queued */

    /* cmd_lock guards cmd_head, cmd_tail, stopping, started, and `done`/`next` of queued commands.
     * cmd_cond is broadcast when commands are done, and when the thread has started. */
    pthread_mutex_t cmd_lock;
    pthread_cond_t cmd_cond;
    struct media_cmd *cmd_head, *cmd_tail;
    int stopping;
    int started; /* the thread has set itself up (media_new waits for it) */

    /* table_lock guards buckets, nbuckets, count, closed, next_id and every stream's stats,
     * dtmf_rx and ring. */
    pthread_mutex_t table_lock;
    struct media_stream **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    int closed;
    uint32_t next_id;
    uint64_t lat_hist[MEDIA_LAT_BUCKETS]; /* lateness of generated packets, 10 us buckets */
    uint64_t lat_count, lat_max_ns;

    /* Media thread only. */
    int no_pwait2; /* the kernel lacks epoll_pwait2 */
    uint64_t round; /* turns of the loop */
    struct twheel wheel;
    struct mmsghdr rx_msgs[MEDIA_RX_BATCH];
    struct iovec rx_iov[MEDIA_RX_BATCH];
    struct sockaddr_storage rx_addr[MEDIA_RX_BATCH];
    uint8_t rx_buf[MEDIA_RX_BATCH][MEDIA_RX_BUF];
    /* The send queue: packets of one turn of the loop (every timer due, every echo of a receive
     * batch), sent by media_tx_flush with one sendmmsg per run of packets on one socket and counted
     * under one table_lock.  Entry i's packet is built in txq_buf[i]. */
    size_t ntx;
    struct media_txq_entry txq[MEDIA_TX_BATCH];
    struct mmsghdr tx_msgs[MEDIA_TX_BATCH];
    struct iovec tx_iov[MEDIA_TX_BATCH];
    uint8_t txq_buf[MEDIA_TX_BATCH][MEDIA_TX_BUF];
};

static inline uint64_t media_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t media_mono_ms(void)
{
    return media_mono_ns() / 1000000u;
}

/* media.c: the engine and its thread. */
/* Write a reason into the caller's buffer (may be NULL); e != 0 appends strerror(e). */
__attribute__((format(printf, 4, 5))) void media_set_err(char *err, size_t errlen, int e, const char *fmt, ...);
/* Queue the n commands of cmds (borrowed; they live until done) with one wake-up, and wait until the media
 * thread has run them all.  0, or -ESHUTDOWN (then none was queued); each command's result is its own. */
int media_submit_many(struct media *m, struct media_cmd *cmds, size_t n);
/* Queue c and wait until the media thread has run it: its result, or -ESHUTDOWN. */
int media_submit(struct media *m, struct media_cmd *c);

/* media_cmd.c: commands and the stream table (media thread, except media_table_find). */
/* The stream with this id, NULL if none; table_lock held by the caller. */
struct media_stream *media_table_find(struct media *m, uint32_t id);
/* Run the queued commands. Returns 1 when the engine is stopping (the queue is then failed). */
int media_process_commands(struct media *m);
/* Close a stream's sockets and free it (takes s; already out of the table). */
void media_stream_destroy(struct media *m, struct media_stream *s);
/* The port of an IPv4 or IPv6 address, host order; 0 for another family. */
uint16_t media_addr_port(const struct sockaddr_storage *ss);

/* media_tx.c: the send path (media thread). */
/* A timer of s fired at now (ms): the stream's packet timer, held-back packets or RTCP. */
void media_tx_timer(struct media *m, struct media_stream *s, struct twheel_timer *t, uint64_t now);
/* Echo one received packet's payload with the stream's own header. */
void media_tx_echo(struct media *m, struct media_stream *s, const struct rtp_header *h, const uint8_t *pkt,
                   const struct sockaddr_storage *from, socklen_t fromlen);
/* Arm the packet timer so that queued telephone-events go out (any source). */
void media_tx_kick_dtmf(struct media *m, struct media_stream *s, uint64_t now);
/* Send what is queued (every packet built since the last flush) and count it. */
void media_tx_flush(struct media *m);
/* Free what the send path owns (clip, held-back packets, SRTP sessions) and disarm its timers. */
void media_tx_release(struct media *m, struct media_stream *s);

/* media_rx.c: the receive path (media thread).  Set up the receive buffers once (media_new). */
void media_rx_init(struct media *m);
/* Read the socket ref names (see media_rx.c for how much). */
void media_rx_ready(struct media *m, struct media_fdref *ref);
/* NTP time now, 32.32 (RFC 3550 4). */
uint64_t media_ntp_now(void);

#endif
