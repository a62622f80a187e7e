/* The media engine's stream API, called from any thread: argument checks, socket binding, the work a
 * START needs done off the media thread (capture reading, SRTP set-up), the commands handed to the media
 * thread, and the statistics read under table_lock.  See media.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtp/media_int.h"

#define MEDIA_EVEN_PORT_TRIES 32

/* Fill buf with n random bytes from the kernel's CSPRNG. 0 or -errno. */
static int random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        p += r;
        n -= (size_t)r;
    }
    if (n == 0)
        return 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            int e = r < 0 ? errno : EIO;
            close(fd);
            return -e;
        }
        p += r;
        n -= (size_t)r;
    }
    close(fd);
    return 0;
}

/* Resolve a numeric IPv4/IPv6 address (no DNS). 0 or -EINVAL. */
static int parse_addr(const char *host, uint16_t port, int passive, struct sockaddr_storage *out, socklen_t *outlen)
{
    if (host == NULL || host[0] == '\0' || strnlen(host, 64) >= 64)
        return -EINVAL;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL)
        return -EINVAL;
    if (res->ai_addrlen > sizeof *out) {
        freeaddrinfo(res);
        return -EINVAL;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Bind RTP on addr; with port 0, on an even port whose odd neighbour is bound too, in *rtcp_fd (RFC 3550
 * 11: RTCP on the next port, reserved now so that nothing takes it before the stream starts); else *rtcp_fd
 * is -1.  The RTP fd, or a negative code with err. */
static int bind_socket(struct sockaddr_storage *addr, socklen_t addrlen, int *rtcp_fd, char *err, size_t errlen)
{
    int want_even = media_addr_port(addr) == 0;
    *rtcp_fd = -1;
    int odd[MEDIA_EVEN_PORT_TRIES];
    int nodd = 0;
    int fd = -1, r = 0;
    for (int attempt = 0; attempt < MEDIA_EVEN_PORT_TRIES; attempt++) {
        fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            r = -errno;
            media_set_err(err, errlen, errno, "socket");
            break;
        }
        if (bind(fd, (struct sockaddr *)addr, addrlen) < 0) {
            r = -errno;
            media_set_err(err, errlen, errno, "bind");
            break;
        }
        struct sockaddr_storage got;
        socklen_t gotlen = sizeof got;
        if (getsockname(fd, (struct sockaddr *)&got, &gotlen) < 0) {
            r = -errno;
            media_set_err(err, errlen, errno, "getsockname");
            break;
        }
        if (!want_even) {
            *addr = got;
            break;
        }
        if (media_addr_port(&got) % 2 == 0 && media_addr_port(&got) < 65535) {
            struct sockaddr_storage next = got;
            uint16_t np = htons((uint16_t)(media_addr_port(&got) + 1));
            if (got.ss_family == AF_INET)
                ((struct sockaddr_in *)&next)->sin_port = np;
            else
                ((struct sockaddr_in6 *)&next)->sin6_port = np;
            int rfd = socket(got.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (rfd >= 0 && bind(rfd, (struct sockaddr *)&next, gotlen) == 0) {
                *addr = got;
                *rtcp_fd = rfd;
                break;
            }
            if (rfd >= 0)
                close(rfd);
        }
        odd[nodd++] = fd; /* keep it bound so the kernel offers another port next time */
        fd = -1;
    }
    for (int i = 0; i < nodd; i++)
        close(odd[i]);
    if (r == 0 && fd < 0) {
        r = -EADDRINUSE;
        media_set_err(err, errlen, 0, "no even UDP port with a free RTCP port after it");
    }
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return r;
    }
    return fd;
}

int media_stream_open(struct media *m, const char *host, uint16_t port, uint32_t *id, uint16_t *bound_port, char *err,
                      size_t errlen)
{
    if (m == NULL || id == NULL || bound_port == NULL)
        return -EINVAL;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    if (parse_addr(host, port, 1, &addr, &addrlen) < 0) {
        media_set_err(err, errlen, 0, "not a numeric IPv4 or IPv6 address: '%.63s'", host ? host : "");
        return -EINVAL;
    }
    struct media_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        media_set_err(err, errlen, 0, "no memory for a stream");
        return -ENOMEM;
    }
    int rtcp_fd;
    int fd = bind_socket(&addr, addrlen, &rtcp_fd, err, errlen);
    if (fd < 0) {
        free(s);
        return fd;
    }
    uint8_t rnd[10];
    int r = random_bytes(rnd, sizeof rnd);
    if (r < 0) {
        media_set_err(err, errlen, -r, "no random bytes for SSRC and sequence");
        close(fd);
        if (rtcp_fd >= 0)
            close(rtcp_fd);
        free(s);
        return r;
    }
    s->fd = fd;
    s->family = addr.ss_family;
    s->rtcp_fd = rtcp_fd; /* added to epoll by the open command */
    s->ref_rtp.s = s;
    s->ref_rtcp.s = s;
    s->ref_rtcp.rtcp = 1;
    s->dtmf_pt = DTMF_DEFAULT_PT;
    twheel_timer_init(&s->timer, s);
    twheel_timer_init(&s->jtimer, s);
    twheel_timer_init(&s->rtimer, s);
    memcpy(&s->ssrc, rnd, 4);
    memcpy(&s->seq, rnd + 4, 2);
    memcpy(&s->ts, rnd + 6, 4);
    rtp_seq_init(&s->rx_seq);
    rtp_jitter_init(&s->rx_jitter);
    s->stats.rx_payload_type = -1;
    s->stats.rtt_ms = -1.0;

    struct media_cmd c;
    memset(&c, 0, sizeof c);
    c.op = MEDIA_CMD_OPEN;
    c.stream = s;
    c.err = err;
    c.errlen = errlen;
    r = media_submit(m, &c);
    if (r < 0) {
        if (r == -ESHUTDOWN)
            media_set_err(err, errlen, 0, "the media engine is closed");
        close(fd);
        if (rtcp_fd >= 0)
            close(rtcp_fd);
        free(s);
        return r;
    }
    *id = c.id;
    *bound_port = media_addr_port(&addr);
    return 0;
}

/* Check cfg and prepare a START command in c (zeroed by the caller): the capture read, the impairment
 * buffer and the SRTP sessions made here, in the caller's thread.  0, or a negative code with err (then
 * nothing is left to free). */
static int start_prepare(uint32_t id, const struct media_stream_cfg *cfg, struct media_cmd *c, char *err,
                         size_t errlen)
{
    c->op = MEDIA_CMD_START;
    c->id = id;
    c->cfg = *cfg;
    c->cfg.remote_host[sizeof c->cfg.remote_host - 1] = '\0';
    c->err = err;
    c->errlen = errlen;
    struct media_stream_cfg *k = &c->cfg;

    if (k->source != MEDIA_SRC_SILENCE && k->source != MEDIA_SRC_TONE && k->source != MEDIA_SRC_ECHO &&
        k->source != MEDIA_SRC_NONE && k->source != MEDIA_SRC_PCAP) {
        media_set_err(err, errlen, 0, "unknown media source");
        return -EINVAL;
    }
    if (k->ptime_ms < MEDIA_PTIME_MIN || k->ptime_ms > MEDIA_PTIME_MAX) {
        media_set_err(err, errlen, 0, "ptime must be 5..200 ms");
        return -EINVAL;
    }
    if (k->payload_type < 0 || k->payload_type > 127 || (k->payload_type >= 72 && k->payload_type <= 76)) {
        media_set_err(err, errlen, 0, "payload type must be 0..127 and not 72..76 (RTCP)");
        return -EINVAL;
    }
    struct rtp_gen probe;
    if (k->source == MEDIA_SRC_SILENCE || k->source == MEDIA_SRC_TONE) {
        if (k->payload_type != RTP_PT_PCMU && k->payload_type != RTP_PT_PCMA) {
            media_set_err(err, errlen, 0, "silence and tone sources need payload type 0 (PCMU) or 8 (PCMA)");
            return -EINVAL;
        }
        if (k->source == MEDIA_SRC_TONE && rtp_gen_init_tone(&probe, k->payload_type, k->tone_hz, k->tone_dbov) < 0) {
            media_set_err(err, errlen, 0, "tone needs 0 < tone_hz < 4000 and dbov <= 0");
            return -EINVAL;
        }
    }
    if (impair_cfg_check(&k->impair) < 0) {
        media_set_err(err, errlen, 0, "impairments need probabilities in 0..1 and a jitter bound of 0..1000 ms");
        return -EINVAL;
    }
    if (k->dtmf_pt < 0 || k->dtmf_pt > 127 || (k->dtmf_pt != 0 && k->dtmf_pt == k->payload_type)) {
        media_set_err(err, errlen, 0, "telephone-event payload type must be 0..127 and differ from the audio's");
        return -EINVAL;
    }
    if (k->rtcp_interval_ms > 0 && k->rtcp_interval_ms < 10) {
        media_set_err(err, errlen, 0, "RTCP interval must be 0 (off) or at least 10 ms");
        return -EINVAL;
    }
    if (k->srtp_suite != SRTP_SUITE_NONE && srtp_suite_key_len(k->srtp_suite) == 0) {
        media_set_err(err, errlen, 0, "unknown SRTP suite");
        return -EINVAL;
    }
    int need_remote = k->source == MEDIA_SRC_SILENCE || k->source == MEDIA_SRC_TONE || k->source == MEDIA_SRC_PCAP ||
                      k->remote_port != 0;
    if (need_remote) {
        if (k->remote_port == 0) {
            media_set_err(err, errlen, 0, "remote port 0 is only allowed for the echo and none sources");
            return -EINVAL;
        }
        if (parse_addr(k->remote_host, k->remote_port, 0, &c->remote, &c->remote_len) < 0) {
            media_set_err(err, errlen, 0, "remote host is not a numeric IPv4 or IPv6 address: '%.63s'", k->remote_host);
            return -EINVAL;
        }
    } else {
        c->remote_len = 0;
    }
    /* file reading, allocation and key set-up happen here, off the media thread */
    if (k->source == MEDIA_SRC_PCAP) {
        k->pcap_path[sizeof k->pcap_path - 1] = '\0';
        c->clip = pcap_clip_load(k->pcap_path, err, errlen);
        if (c->clip == NULL)
            return -EINVAL;
    }
    if (impair_cfg_active(&k->impair)) {
        c->pend = calloc(MEDIA_PENDING_MAX, sizeof *c->pend);
        if (c->pend == NULL) {
            pcap_clip_free(c->clip);
            media_set_err(err, errlen, 0, "no memory for impairments");
            return -ENOMEM;
        }
    }
    if (k->srtp_suite != SRTP_SUITE_NONE &&
        srtp_pair_init(&c->srtp, k->srtp_suite, k->srtp_tx_key, k->srtp_rx_key, err, errlen) < 0) {
        pcap_clip_free(c->clip);
        free(c->pend);
        return -EINVAL;
    }
    return 0;
}

/* Free what a START command still holds (not taken when it failed or was not run); name its error. */
static int start_finish(struct media_cmd *c, int r, char *err, size_t errlen)
{
    pcap_clip_free(c->clip);
    c->clip = NULL;
    free(c->pend);
    c->pend = NULL;
    if (c->srtp.tx != NULL)
        srtp_pair_free(&c->srtp);
    memset(&c->cfg, 0, sizeof c->cfg); /* keys */
    if (r == -ESHUTDOWN)
        media_set_err(err, errlen, 0, "the media engine is closed");
    else if (r == -ENOENT)
        media_set_err(err, errlen, 0, "no such stream");
    return r;
}

int media_stream_start(struct media *m, uint32_t id, const struct media_stream_cfg *cfg, char *err, size_t errlen)
{
    if (m == NULL || cfg == NULL)
        return -EINVAL;
    struct media_cmd c;
    memset(&c, 0, sizeof c);
    int r = start_prepare(id, cfg, &c, err, errlen);
    if (r < 0)
        return r;
    return start_finish(&c, media_submit(m, &c), err, errlen);
}

int media_stream_start_many(struct media *m, size_t n, const uint32_t *ids, const struct media_stream_cfg *cfgs,
                            size_t *failed, char *err, size_t errlen)
{
    if (m == NULL || (n > 0 && (ids == NULL || cfgs == NULL)) || failed == NULL)
        return -EINVAL;
    *failed = n;
    if (n == 0)
        return 0;
    struct media_cmd *cmds = calloc(n, sizeof *cmds);
    if (cmds == NULL) {
        media_set_err(err, errlen, 0, "no memory for %zu start commands", n);
        return -ENOMEM;
    }
    int r = 0;
    size_t prepared = 0;
    for (; prepared < n; prepared++) {
        r = start_prepare(ids[prepared], &cfgs[prepared], &cmds[prepared], err, errlen);
        if (r < 0)
            break;
        /* spread over one ptime: stream i of n starts i/n of a ptime later */
        cmds[prepared].phase_ms = (uint32_t)((uint64_t)cmds[prepared].cfg.ptime_ms * prepared / n);
    }
    if (r == 0) {
        r = media_submit_many(m, cmds, n);
        for (size_t i = 0; r == 0 && i < n; i++) {
            if (cmds[i].result < 0 && *failed == n) {
                *failed = i;
                r = cmds[i].result;
            }
        }
    } else {
        *failed = prepared;
    }
    for (size_t i = 0; i < prepared; i++)
        start_finish(&cmds[i], i == *failed ? r : 0, err, errlen);
    free(cmds);
    return r;
}

/* One STOP or CLOSE command per id, all in one hand-over. */
static int stream_op_many(struct media *m, enum media_cmd_op op, size_t n, const uint32_t *ids, size_t *failed)
{
    if (m == NULL || (n > 0 && ids == NULL) || failed == NULL)
        return -EINVAL;
    *failed = n;
    if (n == 0)
        return 0;
    struct media_cmd *cmds = calloc(n, sizeof *cmds);
    if (cmds == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        cmds[i].op = op;
        cmds[i].id = ids[i];
    }
    int r = media_submit_many(m, cmds, n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (cmds[i].result < 0) {
            *failed = i;
            r = cmds[i].result;
        }
    }
    free(cmds);
    return r;
}

int media_stream_stop(struct media *m, uint32_t id)
{
    size_t failed;
    return stream_op_many(m, MEDIA_CMD_STOP, 1, &id, &failed);
}

int media_stream_close(struct media *m, uint32_t id)
{
    size_t failed;
    return stream_op_many(m, MEDIA_CMD_CLOSE, 1, &id, &failed);
}

int media_stream_stop_many(struct media *m, size_t n, const uint32_t *ids, size_t *failed)
{
    return stream_op_many(m, MEDIA_CMD_STOP, n, ids, failed);
}

int media_stream_close_many(struct media *m, size_t n, const uint32_t *ids, size_t *failed)
{
    return stream_op_many(m, MEDIA_CMD_CLOSE, n, ids, failed);
}

int media_stream_stats(struct media *m, uint32_t id, struct media_stats *out)
{
    if (m == NULL || out == NULL)
        return -EINVAL;
    int r = 0;
    pthread_mutex_lock(&m->table_lock);
    if (m->closed) {
        r = -ESHUTDOWN;
    } else {
        struct media_stream *s = media_table_find(m, id);
        if (s == NULL)
            r = -ENOENT;
        else
            *out = s->stats;
    }
    pthread_mutex_unlock(&m->table_lock);
    return r;
}

size_t media_stream_count(struct media *m)
{
    if (m == NULL)
        return 0;
    pthread_mutex_lock(&m->table_lock);
    size_t n = m->count;
    pthread_mutex_unlock(&m->table_lock);
    return n;
}

int media_stream_dtmf(struct media *m, uint32_t id, const char *digits, uint32_t duration_ms, uint8_t volume,
                      char *err, size_t errlen)
{
    if (m == NULL || digits == NULL)
        return -EINVAL;
    size_t n = strnlen(digits, MEDIA_DTMF_MAX_DIGITS + 1);
    if (n == 0 || n > MEDIA_DTMF_MAX_DIGITS) {
        media_set_err(err, errlen, 0, "1..%u digits are needed", MEDIA_DTMF_MAX_DIGITS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (dtmf_event_code(digits[i]) < 0) {
            media_set_err(err, errlen, 0, "'%c' is not a DTMF digit (0-9, *, #, A-D)", digits[i]);
            return -EINVAL;
        }
    }
    if (duration_ms < 10 || duration_ms > 5000 || volume > 63) {
        media_set_err(err, errlen, 0, "duration must be 10..5000 ms and volume 0..63");
        return -EINVAL;
    }
    struct media_cmd c;
    memset(&c, 0, sizeof c);
    c.op = MEDIA_CMD_DTMF;
    c.id = id;
    c.digits = digits;
    c.duration_ms = duration_ms;
    c.volume = volume;
    c.err = err;
    c.errlen = errlen;
    int r = media_submit(m, &c);
    if (r == -ESHUTDOWN)
        media_set_err(err, errlen, 0, "the media engine is closed");
    return r;
}

int media_stream_dtmf_events(struct media *m, uint32_t id, struct dtmf_event *out, size_t max, size_t *n)
{
    if (m == NULL || n == NULL || (out == NULL && max > 0))
        return -EINVAL;
    int r = 0;
    *n = 0;
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = m->closed ? NULL : media_table_find(m, id);
    if (m->closed) {
        r = -ESHUTDOWN;
    } else if (s == NULL) {
        r = -ENOENT;
    } else {
        uint64_t total = s->dtmf_rx.total;
        uint64_t k = total < DTMF_RX_EVENTS ? total : DTMF_RX_EVENTS;
        if (k > max)
            k = max;
        for (uint64_t i = total - k; i < total; i++)
            out[(*n)++] = s->dtmf_rx.ev[i % DTMF_RX_EVENTS];
    }
    pthread_mutex_unlock(&m->table_lock);
    return r;
}

int media_stream_tone(struct media *m, uint32_t id, double hz, uint32_t window_ms, struct tone_result *out)
{
    if (m == NULL || out == NULL || window_ms == 0 || window_ms > TONE_RING_SAMPLES / MEDIA_SAMPLES_PER_MS)
        return -EINVAL;
    static const struct tone_ring empty; /* read-only: no audio yet */
    int r;
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = m->closed ? NULL : media_table_find(m, id);
    if (m->closed)
        r = -ESHUTDOWN;
    else if (s == NULL)
        r = -ENOENT;
    else if (s->ring == NULL || s->ring_last_ms + window_ms + MEDIA_TONE_STALE_MS < media_mono_ms())
        r = tone_detect(&empty, hz, window_ms * MEDIA_SAMPLES_PER_MS, out); /* nothing arrived lately: silence */
    else
        r = tone_detect(s->ring, hz, window_ms * MEDIA_SAMPLES_PER_MS, out);
    pthread_mutex_unlock(&m->table_lock);
    return r;
}

int media_stream_samples(struct media *m, uint32_t id, uint64_t since, int16_t *out, size_t max, uint64_t *total,
                         uint64_t *first, size_t *n)
{
    *total = 0;
    *first = since;
    *n = 0;
    if (m == NULL || (out == NULL && max > 0))
        return -EINVAL;
    int r = 0;
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = m->closed ? NULL : media_table_find(m, id);
    if (m->closed) {
        r = -ESHUTDOWN;
    } else if (s == NULL) {
        r = -ENOENT;
    } else if (s->ring != NULL) {
        const struct tone_ring *ring = s->ring;
        uint64_t oldest = tone_ring_oldest(ring);
        uint64_t from = since < oldest ? oldest : since;
        uint64_t count = from < ring->total ? ring->total - from : 0;
        if (count > max)
            count = max;
        tone_ring_decode(ring, from, out, (size_t)count);
        *total = ring->total;
        *first = from;
        *n = (size_t)count;
    }
    pthread_mutex_unlock(&m->table_lock);
    return r;
}

int media_tx_lateness(struct media *m, int reset, struct media_lateness *out)
{
    if (m == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->table_lock);
    out->count = m->lat_count;
    out->max_us = m->lat_max_ns / 1000.0;
    uint64_t want50 = (m->lat_count + 1) / 2, want99 = m->lat_count - m->lat_count / 100, acc = 0;
    int got50 = 0;
    for (size_t i = 0; i < MEDIA_LAT_BUCKETS && m->lat_count > 0; i++) {
        acc += m->lat_hist[i];
        if (!got50 && acc >= want50) {
            out->p50_us = (double)(i + 1) * 10.0; /* the bucket's upper edge */
            got50 = 1;
        }
        if (acc >= want99) {
            out->p99_us = (double)(i + 1) * 10.0;
            break;
        }
    }
    if (out->p99_us > out->max_us)
        out->p99_us = out->max_us;
    if (out->p50_us > out->max_us)
        out->p50_us = out->max_us;
    if (reset) {
        memset(m->lat_hist, 0, sizeof m->lat_hist);
        m->lat_count = 0;
        m->lat_max_ns = 0;
    }
    pthread_mutex_unlock(&m->table_lock);
    return 0;
}
