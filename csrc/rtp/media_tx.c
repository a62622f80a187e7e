/* The media engine's send path (media thread only): generators, capture replay, echo,
 * telephone-events, impairments, SRTP protection and RTCP reports.  See media_int.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtp/media_int.h"

/* The buffer of the next send-queue entry (MEDIA_TX_BUF bytes): build a packet there, then
 * queue it with txq_commit.  A full queue is flushed first. */
static uint8_t *txq_slot(struct media *m)
{
    if (m->ntx == MEDIA_TX_BATCH)
        media_tx_flush(m);
    return m->txq_buf[m->ntx];
}

/* Queue the packet built in the current slot (len bytes). */
static void txq_commit(struct media *m, struct media_stream *s, int fd, size_t len, size_t payload_len,
                       const struct sockaddr_storage *to, socklen_t tolen, int rtcp, uint64_t due_ns)
{
    struct media_txq_entry *e = &m->txq[m->ntx++];
    e->s = s;
    e->fd = fd;
    e->rtcp = rtcp;
    e->len = len;
    e->payload_len = payload_len;
    e->due_ns = due_ns;
    e->tolen = tolen;
    memcpy(&e->to, to, tolen <= sizeof e->to ? tolen : sizeof e->to);
}

/* Count packets of the queue that were not sent (SRTP failure, ...). */
static void count_error(struct media *m, struct media_stream *s)
{
    pthread_mutex_lock(&m->table_lock);
    s->stats.tx_errors++;
    pthread_mutex_unlock(&m->table_lock);
}

void media_tx_flush(struct media *m)
{
    size_t n = m->ntx;
    if (n == 0)
        return;
    int ok[MEDIA_TX_BATCH];
    uint64_t sent_ns[MEDIA_TX_BATCH];
    for (size_t i = 0; i < n; i++) {
        struct media_txq_entry *e = &m->txq[i];
        m->tx_iov[i].iov_base = m->txq_buf[i];
        m->tx_iov[i].iov_len = e->len;
        memset(&m->tx_msgs[i], 0, sizeof m->tx_msgs[i]);
        m->tx_msgs[i].msg_hdr.msg_name = &e->to;
        m->tx_msgs[i].msg_hdr.msg_namelen = e->tolen;
        m->tx_msgs[i].msg_hdr.msg_iov = &m->tx_iov[i];
        m->tx_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    /* one sendmmsg per run of packets on one socket (a capture's burst, held-back packets, a
     * socket's echoes); streams have sockets of their own, so most runs are one packet long: sendto */
    size_t i = 0;
    while (i < n) {
        size_t run = 1;
        while (i + run < n && m->txq[i + run].fd == m->txq[i].fd)
            run++;
        uint64_t now_ns = media_mono_ns();
        int r;
        if (run == 1) {
            /* sendto: the kernel copies no msghdr and no iovec, cheaper than sendmmsg of one */
            const struct media_txq_entry *e = &m->txq[i];
            r = sendto(e->fd, m->txq_buf[i], e->len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&e->to,
                       e->tolen) < 0 ? -1 : 1;
        } else {
            r = sendmmsg(m->txq[i].fd, &m->tx_msgs[i], (unsigned)run, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ok[i] = 0; /* the first failed (buffer full, unreachable, ...): count it, go on */
            sent_ns[i] = now_ns;
            i++;
            continue;
        }
        for (size_t k = i; k < i + (size_t)r; k++) {
            ok[k] = 1;
            sent_ns[k] = now_ns;
        }
        i += (size_t)r;
    }
    pthread_mutex_lock(&m->table_lock);
    for (size_t k = 0; k < n; k++) {
        struct media_txq_entry *e = &m->txq[k];
        struct media_stream *s = e->s;
        if (e->rtcp) {
            s->stats.rtcp_tx += (uint64_t)ok[k];
            continue;
        }
        if (e->due_ns != 0) {
            uint64_t late = sent_ns[k] > e->due_ns ? sent_ns[k] - e->due_ns : 0;
            uint64_t b = late / 10000u;
            m->lat_hist[b < MEDIA_LAT_BUCKETS ? b : MEDIA_LAT_BUCKETS - 1]++;
            m->lat_count++;
            if (late > m->lat_max_ns)
                m->lat_max_ns = late;
        }
        if (ok[k]) {
            s->stats.tx_packets++;
            s->stats.tx_bytes += e->payload_len;
            s->tx_octets += (uint32_t)e->payload_len;
        } else {
            s->stats.tx_errors++;
        }
    }
    pthread_mutex_unlock(&m->table_lock);
    m->ntx = 0;
}

static void arm_pending(struct media *m, struct media_stream *s)
{
    if (s->npend == 0) {
        twheel_remove(&m->wheel, &s->jtimer);
        return;
    }
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < s->npend; i++)
        if (s->pend[i].due_us < min)
            min = s->pend[i].due_us;
    twheel_add(&m->wheel, &s->jtimer, (min + 999u) / 1000u);
}

/* Queue held-back packets whose millisecond has come, earliest first. */
static void send_pending(struct media *m, struct media_stream *s, uint64_t now)
{
    for (;;) {
        size_t best = s->npend;
        for (size_t i = 0; i < s->npend; i++)
            if ((s->pend[i].due_us + 999u) / 1000u <= now && (best == s->npend || s->pend[i].due_us < s->pend[best].due_us))
                best = i;
        if (best == s->npend)
            break;
        struct media_pending *p = &s->pend[best];
        uint8_t *buf = txq_slot(m);
        memcpy(buf, p->buf, p->len);
        txq_commit(m, s, s->fd, p->len, p->len > RTP_HEADER_LEN ? p->len - RTP_HEADER_LEN : 0, &p->to, p->tolen, 0, 0);
        s->pend[best] = s->pend[--s->npend];
    }
    arm_pending(m, s);
}

/* Queue one RTP packet, built in the current slot (buf: len bytes, room for the SRTP trailer), through
 * SRTP and the impairments.  due_ns: its place in a generator's schedule, 0 when not measured. */
static void emit(struct media *m, struct media_stream *s, uint8_t *buf, size_t len, size_t payload_len,
                 const struct sockaddr_storage *to, socklen_t tolen, uint64_t due_ns)
{
    if (s->srtp_on && srtp_pair_protect(&s->srtp, buf, &len, 0) < 0) {
        count_error(m, s);
        return;
    }
    if (!s->impaired) {
        txq_commit(m, s, s->fd, len, payload_len, to, tolen, 0, due_ns);
        return;
    }
    struct impair_decision d;
    impair_decide(&s->impair, s->ptime_ms * 1000u, &d);
    pthread_mutex_lock(&m->table_lock);
    s->stats.tx_dropped += (uint64_t)d.drop;
    if (!d.drop) {
        s->stats.tx_duplicated += (uint64_t)(d.copies - 1);
        s->stats.tx_reordered += (uint64_t)d.reordered;
    }
    pthread_mutex_unlock(&m->table_lock);
    if (d.drop)
        return;
    uint64_t now_us = media_mono_ns() / 1000u;
    int queued = 0; /* buf is in the queue: a further copy needs a slot of its own */
    for (int c = 0; c < d.copies; c++) {
        if (d.delay_us == 0 || s->npend == MEDIA_PENDING_MAX) {
            uint8_t *slot = buf;
            if (queued) {
                slot = txq_slot(m);
                memcpy(slot, buf, len);
                buf = slot; /* the earlier slot may be reused after a flush */
            }
            txq_commit(m, s, s->fd, len, payload_len, to, tolen, 0, queued ? 0 : due_ns); /* lateness once */
            queued = 1;
            continue;
        }
        struct media_pending *p = &s->pend[s->npend++];
        p->due_us = now_us + d.delay_us;
        p->len = len;
        memcpy(p->buf, buf, len);
        memcpy(&p->to, to, sizeof p->to);
        p->tolen = tolen;
    }
    arm_pending(m, s);
}

/* A telephone-event packet when one is due: returns 1 when sent (the tick's audio is replaced). */
static int dtmf_packet(struct media *m, struct media_stream *s, uint64_t now)
{
    if (!s->dtmf.active) {
        if (s->dtmf_qlen == 0 || now < s->dtmf_next_ms)
            return 0;
        int code = dtmf_event_code(s->dtmf_queue[s->dtmf_qhead]);
        s->dtmf_qhead = (s->dtmf_qhead + 1) % MEDIA_DTMF_MAX_DIGITS;
        s->dtmf_qlen--;
        if (code < 0 || dtmf_tx_begin(&s->dtmf, (uint8_t)code, s->dtmf_volume, s->dtmf_total, s->ts) < 0)
            return 0;
    }
    uint8_t *buf = txq_slot(m);
    int marker = 0;
    if (!dtmf_tx_next(&s->dtmf, s->samples, buf + RTP_HEADER_LEN, &marker)) {
        pthread_mutex_lock(&m->table_lock);
        s->stats.tx_dtmf_events++;
        pthread_mutex_unlock(&m->table_lock);
        s->dtmf_next_ms = now + MEDIA_DTMF_GAP_MS;
        return 0;
    }
    rtp_packet_write_header(buf, MEDIA_TX_BUF, marker, s->dtmf_pt, s->seq, s->dtmf.ts, s->ssrc);
    emit(m, s, buf, RTP_HEADER_LEN + DTMF_PAYLOAD_LEN, DTMF_PAYLOAD_LEN, &s->remote, s->remote_len, 0);
    s->seq++;
    s->sent_any = 1;
    s->last_send_ms = now;
    return 1;
}

/* Packet send_k of a silence/tone stream (or of telephone-events alone) is due at `now`. */
static void gen_due(struct media *m, struct media_stream *s, uint64_t now)
{
    int audio = s->source == MEDIA_SRC_SILENCE || s->source == MEDIA_SRC_TONE;
    uint64_t due = s->send_start_ms + s->send_k * s->ptime_ms;
    if (now > due && now - due > MEDIA_MAX_LATE_MS) {
        /* The thread was held up: skip the packets that are hopelessly late, keeping the clock. */
        uint64_t missed = (now - due) / s->ptime_ms;
        s->send_k += missed;
        s->ts += (uint32_t)(missed * s->samples);
        rtp_gen_skip(&s->gen, missed * s->samples);
    }
    if (s->remote_len != 0 && dtmf_packet(m, s, now)) {
        if (audio)
            rtp_gen_skip(&s->gen, s->samples);
    } else if (audio) {
        uint8_t *buf = txq_slot(m);
        size_t hl = rtp_packet_write_header(buf, MEDIA_TX_BUF, s->marker_next, s->payload_type, s->seq, s->ts,
                                            s->ssrc);
        rtp_gen_fill(&s->gen, buf + hl, s->samples);
        uint64_t due_ns = (s->send_start_ms + s->send_k * s->ptime_ms) * 1000000u;
        emit(m, s, buf, hl + s->samples, s->samples, &s->remote, s->remote_len, due_ns);
        s->marker_next = 0;
        s->seq++;
        s->sent_any = 1;
        s->last_send_ms = now;
    } else if (!s->dtmf.active && s->dtmf_qlen == 0) {
        return; /* echo/none: the timer only runs for telephone-events */
    }
    s->ts += s->samples;
    s->send_k++;
    twheel_add(&m->wheel, &s->timer, s->send_start_ms + s->send_k * s->ptime_ms);
}

/* Send the capture's packets whose time has come; re-arm for the next. */
static void clip_due(struct media *m, struct media_stream *s, uint64_t now)
{
    const struct pcap_clip *c = s->clip;
    if (c == NULL)
        return;
    for (int burst = 0; burst < 256; burst++) {
        if (s->clip_i == c->count) {
            if (!s->clip_loop) {
                s->sending = 0;
                pthread_mutex_lock(&m->table_lock);
                s->stats.sending = 0;
                pthread_mutex_unlock(&m->table_lock);
                return;
            }
            s->clip_i = 0;
            s->clip_round++;
            pthread_mutex_lock(&m->table_lock);
            s->stats.pcap_loops++;
            pthread_mutex_unlock(&m->table_lock);
        }
        const struct pcap_clip_pkt *pk = &c->pkts[s->clip_i];
        uint64_t due_us = s->clip_start_us + s->clip_round * c->period_us + pk->at_us;
        uint64_t due_ms = (due_us + 999u) / 1000u;
        if (due_ms > now) {
            twheel_add(&m->wheel, &s->timer, due_ms);
            return;
        }
        uint32_t ts = s->clip_ts_base + (uint32_t)s->clip_round * c->ts_period + pk->ts_delta;
        uint8_t *buf = txq_slot(m);
        size_t hl = rtp_packet_write_header(buf, MEDIA_TX_BUF, pk->marker, pk->payload_type, s->seq, ts, s->ssrc);
        memcpy(buf + hl, c->data + pk->off, pk->len);
        emit(m, s, buf, hl + pk->len, pk->len, &s->remote, s->remote_len, 0);
        s->seq++;
        s->ts = ts;
        s->sent_any = 1;
        s->last_send_ms = now;
        s->clip_i++;
    }
    twheel_add(&m->wheel, &s->timer, now); /* a long burst: let the others run first */
}

static void rtcp_send(struct media *m, struct media_stream *s, uint64_t now)
{
    twheel_add(&m->wheel, &s->rtimer, now + s->rtcp_interval_ms);
    if (s->rtcp_remote_len == 0)
        return;
    media_tx_flush(m); /* the sender report counts every packet queued before it */
    struct rtcp_sender_info si;
    struct rtcp_block rb;
    memset(&rb, 0, sizeof rb);
    if (s->sent_any) {
        si.ntp = media_ntp_now();
        si.rtp_ts = s->ts;
        si.packets = (uint32_t)s->stats.tx_packets; /* written by this thread only */
        si.octets = s->tx_octets;
    }
    if (s->rx_have_ssrc) {
        /* RFC 3550 A.3: the fraction lost since the last report */
        uint64_t expected = rtp_seq_expected(&s->rx_seq), received = s->rx_seq.received;
        uint64_t exp_int = expected - s->rr_expected_prior;
        uint64_t rec_int = received - s->rr_received_prior;
        s->rr_expected_prior = expected;
        s->rr_received_prior = received;
        uint64_t lost_int = exp_int > rec_int ? exp_int - rec_int : 0;
        rb.ssrc = s->stats.rx_ssrc;
        rb.fraction_lost = exp_int ? (uint8_t)((lost_int << 8) / exp_int) : 0;
        uint64_t cum = rtp_seq_lost(&s->rx_seq);
        rb.cum_lost = cum > 0x7fffff ? 0x7fffff : (int32_t)cum;
        rb.ext_max_seq = (uint32_t)s->rx_seq.ext_max;
        rb.jitter = (uint32_t)s->rx_jitter.jitter;
        if (s->last_sr_ns != 0) {
            rb.lsr = s->last_sr_mid;
            rb.dlsr = (uint32_t)((media_mono_ns() - s->last_sr_ns) * 65536u / 1000000000u);
        }
    }
    uint8_t *buf = txq_slot(m);
    size_t len = rtcp_write_report(buf, RTCP_MAX_LEN, s->ssrc, s->sent_any ? &si : NULL, s->rx_have_ssrc ? &rb : NULL,
                                   MEDIA_CNAME);
    if (len == 0 || (s->srtp_on && srtp_pair_protect(&s->srtp, buf, &len, 1) < 0))
        return;
    int fd = s->rtcp_mux || s->rtcp_fd < 0 ? s->fd : s->rtcp_fd;
    txq_commit(m, s, fd, len, 0, &s->rtcp_remote, s->rtcp_remote_len, 1, 0);
}

void media_tx_timer(struct media *m, struct media_stream *s, struct twheel_timer *t, uint64_t now)
{
    if (t == &s->jtimer) {
        send_pending(m, s, now);
        return;
    }
    if (t == &s->rtimer) {
        rtcp_send(m, s, now);
        return;
    }
    if (!s->sending)
        return;
    if (s->source == MEDIA_SRC_PCAP)
        clip_due(m, s, now);
    else
        gen_due(m, s, now);
}

void media_tx_kick_dtmf(struct media *m, struct media_stream *s, uint64_t now)
{
    if (twheel_armed(&s->timer) || s->source == MEDIA_SRC_PCAP)
        return;
    s->send_start_ms = now;
    s->send_k = 0;
    twheel_add(&m->wheel, &s->timer, now);
}

void media_tx_echo(struct media *m, struct media_stream *s, const struct rtp_header *h, const uint8_t *pkt,
                   const struct sockaddr_storage *from, socklen_t fromlen)
{
    if (h->payload_len > MEDIA_MAX_PAYLOAD)
        return;
    if (!s->echo_have_offset) {
        s->echo_ts_offset = s->ts - h->timestamp;
        s->echo_have_offset = 1;
    }
    uint32_t ts = h->timestamp + s->echo_ts_offset;
    uint8_t pt = h->payload_type == s->dtmf_pt ? s->dtmf_pt : s->payload_type; /* events stay events */
    uint8_t *buf = txq_slot(m);
    size_t hl = rtp_packet_write_header(buf, MEDIA_TX_BUF, s->marker_next, pt, s->seq, ts, s->ssrc);
    memcpy(buf + hl, pkt + h->payload_offset, h->payload_len);
    const struct sockaddr_storage *to = s->remote_len ? &s->remote : from;
    socklen_t tolen = s->remote_len ? s->remote_len : fromlen;
    emit(m, s, buf, hl + h->payload_len, h->payload_len, to, tolen, 0);
    s->marker_next = 0;
    s->seq++;
    s->ts = ts;
    s->sent_any = 1;
    s->last_send_ms = media_mono_ms();
}

void media_tx_release(struct media *m, struct media_stream *s)
{
    twheel_remove(&m->wheel, &s->timer);
    twheel_remove(&m->wheel, &s->jtimer);
    twheel_remove(&m->wheel, &s->rtimer);
    pcap_clip_free(s->clip);
    s->clip = NULL;
    free(s->pend);
    s->pend = NULL;
    s->npend = 0;
    s->impaired = 0;
    if (s->srtp_on)
        srtp_pair_free(&s->srtp);
    s->srtp_on = 0;
}
