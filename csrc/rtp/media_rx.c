/* The media engine's receive path (media thread only): SRTP/SRTCP unprotection, RTP statistics,
 * telephone-event detection, the audio ring for tone checks, RTCP reports.  See media_int.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtp/media_int.h"

#define NTP_UNIX_OFFSET 2208988800u
/* an RTT computed below zero by at most this (1/65536 s, here 10 ms) is the peer rounding its DLSR up, on a
 * near-zero path: reported as 0 ms; anything more negative is a bogus report and is ignored */
#define RTT_ROUNDING_SLACK 655u

uint64_t media_ntp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t sec = (uint64_t)ts.tv_sec + NTP_UNIX_OFFSET;
    uint64_t frac = ((uint64_t)ts.tv_nsec << 32) / 1000000000u;
    return sec << 32 | frac;
}

/* Account one valid RTP packet; table_lock held. */
static void account_rtp(struct media_stream *s, const struct rtp_header *h, const uint8_t *pkt, uint64_t now_ns)
{
    struct media_stats *st = &s->stats;
    if (s->rx_have_ssrc && h->ssrc != st->rx_ssrc) {
        /* a new source: restart sequence tracking and jitter, keep the counts so far */
        uint64_t lost = rtp_seq_lost(&s->rx_seq), late = s->rx_seq.late, dups = s->rx_seq.duplicates;
        rtp_seq_init(&s->rx_seq);
        s->rx_seq.lost_prior = lost;
        s->rx_seq.late = late;
        s->rx_seq.duplicates = dups;
        rtp_jitter_init(&s->rx_jitter);
        s->rr_expected_prior = s->rr_received_prior = 0;
    }
    s->rx_have_ssrc = 1;
    st->rx_ssrc = h->ssrc;
    int event = h->payload_type == s->dtmf_pt;
    if (!event)
        st->rx_payload_type = h->payload_type;
    /* rx_packets counts every valid RTP packet, duplicates included */
    st->rx_packets++;
    st->rx_bytes += h->payload_len;
    enum rtp_seq_result sr = rtp_seq_update(&s->rx_seq, h->seq);
    st->rx_lost = rtp_seq_lost(&s->rx_seq);
    st->rx_out_of_order = s->rx_seq.late;
    st->rx_duplicates = s->rx_seq.duplicates;
    uint64_t now_ms = now_ns / 1000000u;
    if (event) {
        /* telephone-events carry the event's start timestamp: not for jitter, not audio */
        if (dtmf_rx_packet(&s->dtmf_rx, pkt + h->payload_offset, h->payload_len, h->timestamp, now_ms) >= 0)
            st->rx_dtmf_events = s->dtmf_rx.total;
    } else {
        if (sr != RTP_SEQ_JUMP && sr != RTP_SEQ_DUPLICATE) {
            /* arrival in timestamp units (8000 Hz: this engine's codecs are G.711) */
            rtp_jitter_update(&s->rx_jitter, (double)now_ns * (RTP_GEN_RATE / 1e9), h->timestamp);
            st->jitter_ms = s->rx_jitter.jitter * 1000.0 / RTP_GEN_RATE;
        }
        if (h->payload_type == RTP_PT_PCMU || h->payload_type == RTP_PT_PCMA) {
            if (s->ring == NULL)
                s->ring = calloc(1, sizeof *s->ring);
            if (s->ring != NULL && sr != RTP_SEQ_DUPLICATE) {
                tone_ring_push_g711(s->ring, h->payload_type, pkt + h->payload_offset, h->payload_len);
                s->ring_last_ms = now_ms;
            }
        }
    }
    if (st->first_rx_ms == 0)
        st->first_rx_ms = now_ms ? now_ms : 1;
    else if (now_ns > s->rx_last_ns) {
        double gap = (double)(now_ns - s->rx_last_ns) / 1e6;
        if (gap > st->max_gap_ms)
            st->max_gap_ms = gap;
    }
    st->last_rx_ms = now_ms ? now_ms : 1;
    s->rx_last_ns = now_ns;
}

static void handle_rtcp(struct media *m, struct media_stream *s, uint8_t *buf, size_t len, uint64_t now_ns)
{
    int r = 0;
    if (s->srtp_on)
        r = srtp_pair_unprotect(&s->srtp, buf, &len, 1);
    struct rtcp_report rep;
    if (r == 0)
        r = rtcp_parse(buf, len, s->ssrc, &rep);
    pthread_mutex_lock(&m->table_lock);
    struct media_stats *st = &s->stats;
    if (r == -EACCES)
        st->rx_auth_fail++;
    else if (r == -EALREADY)
        st->rx_replay++;
    else if (r < 0)
        st->rx_invalid++;
    if (r < 0) {
        pthread_mutex_unlock(&m->table_lock);
        return;
    }
    st->rtcp_rx++;
    if (rep.is_sr) {
        s->last_sr_mid = rep.sr_ntp_mid;
        s->last_sr_ns = now_ns;
    }
    if (rep.have_block) {
        st->peer_report = 1;
        st->peer_fraction_lost = rep.block.fraction_lost / 256.0;
        st->peer_cum_lost = rep.block.cum_lost;
        st->peer_jitter_ms = rep.block.jitter * 1000.0 / RTP_GEN_RATE;
        if (rep.block.lsr != 0) {
            uint32_t now_mid = (uint32_t)(media_ntp_now() >> 16);
            uint32_t rtt = now_mid - rep.block.lsr - rep.block.dlsr;
            if (rtt < 0x80000000u)
                st->rtt_ms = rtt * 1000.0 / 65536.0;
            else if (0u - rtt <= RTT_ROUNDING_SLACK)
                st->rtt_ms = 0.0; /* a near-zero RTT less the peer's DLSR, rounded up (baresip does) */
        }
    }
    pthread_mutex_unlock(&m->table_lock);
}

void media_rx_init(struct media *m)
{
    for (int i = 0; i < MEDIA_RX_BATCH; i++) {
        m->rx_iov[i].iov_base = m->rx_buf[i];
        m->rx_iov[i].iov_len = MEDIA_RX_BUF;
        memset(&m->rx_msgs[i], 0, sizeof m->rx_msgs[i]);
        m->rx_msgs[i].msg_hdr.msg_iov = &m->rx_iov[i];
        m->rx_msgs[i].msg_hdr.msg_iovlen = 1;
        m->rx_msgs[i].msg_hdr.msg_name = &m->rx_addr[i];
        m->rx_msgs[i].msg_hdr.msg_namelen = sizeof m->rx_addr[i];
    }
}

/* Read what the socket holds.  A stream's socket mostly holds one packet when it is ready (50 a second),
 * and a recvmmsg of many would try for a second one and fail: so a socket whose last read found one packet,
 * and that was not ready in the turn before, gets one read of one packet; epoll is level-triggered, and what
 * is left is reported at the next turn.  Otherwise (a burst) the socket is drained in batches until EAGAIN, or
 * until MEDIA_RX_MAX_BATCHES batches, so that a flooded socket cannot starve the others (the rest is read at
 * the next turn of the loop, after the timers due meanwhile). */
void media_rx_ready(struct media *m, struct media_fdref *ref)
{
    struct media_stream *s = ref->s;
    int fd = ref->rtcp ? s->rtcp_fd : s->fd;
    unsigned vlen = ref->last_n <= 1 && ref->last_round + 1 < m->round ? 1u : MEDIA_RX_BATCH;
    uint32_t got = 0;
    ref->last_round = m->round;
    for (int batch = 0; batch < MEDIA_RX_MAX_BATCHES; batch++) {
        int n = recvmmsg(fd, m->rx_msgs, vlen, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* EAGAIN: drained; anything else: try again at the next readiness */
        }
        got += (uint32_t)n;
        uint64_t now_ns = media_mono_ns();
        struct rtp_header hdr[MEDIA_RX_BATCH];
        int status[MEDIA_RX_BATCH]; /* 1 RTP, 0 done with (RTCP), <0 an error to count */
        for (int i = 0; i < n; i++) {
            uint8_t *pkt = m->rx_buf[i];
            size_t len = m->rx_msgs[i].msg_len;
            if (m->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                status[i] = -EBADMSG;
            } else if (ref->rtcp || rtcp_is_rtcp(pkt, len)) {
                handle_rtcp(m, s, pkt, len, now_ns);
                status[i] = 0;
            } else {
                int r = s->srtp_on ? srtp_pair_unprotect(&s->srtp, pkt, &len, 0) : 0;
                if (r == 0)
                    r = rtp_packet_parse(pkt, len, &hdr[i]);
                status[i] = r == 0 ? 1 : r;
            }
        }
        pthread_mutex_lock(&m->table_lock);
        for (int i = 0; i < n; i++) {
            if (status[i] == 1)
                account_rtp(s, &hdr[i], m->rx_buf[i], now_ns);
            else if (status[i] == -EACCES)
                s->stats.rx_auth_fail++;
            else if (status[i] == -EALREADY)
                s->stats.rx_replay++;
            else if (status[i] < 0)
                s->stats.rx_invalid++;
        }
        pthread_mutex_unlock(&m->table_lock);
        if (s->sending && s->source == MEDIA_SRC_ECHO) {
            for (int i = 0; i < n; i++) {
                if (status[i] == 1)
                    media_tx_echo(m, s, &hdr[i], m->rx_buf[i], &m->rx_addr[i], m->rx_msgs[i].msg_hdr.msg_namelen);
            }
        }
        for (int i = 0; i < n; i++) { /* the kernel wrote these: ready for the next read */
            m->rx_msgs[i].msg_hdr.msg_namelen = sizeof m->rx_addr[i];
            m->rx_msgs[i].msg_hdr.msg_flags = 0;
        }
        if ((unsigned)n < vlen || vlen == 1)
            break;
    }
    ref->last_n = got;
}
