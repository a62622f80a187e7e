/* The media engine's commands, run on the media thread: open, start, stop, close and telephone-events
 * of a stream, and the stream table they change.  Other threads queue them (media_stream.c) and wait;
 * see media.c for the hand-over and media_int.h for the locks. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtp/media_int.h"

uint16_t media_addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* ---- stream table (table_lock held by the caller) ---- */

struct media_stream *media_table_find(struct media *m, uint32_t id)
{
    for (struct media_stream *s = m->buckets[id & (m->nbuckets - 1)]; s != NULL; s = s->hnext) {
        if (s->id == id)
            return s;
    }
    return NULL;
}

static int table_grow(struct media *m)
{
    size_t n = m->nbuckets * 2;
    struct media_stream **b = calloc(n, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct media_stream *s = m->buckets[i];
        while (s != NULL) {
            struct media_stream *next = s->hnext;
            s->hnext = b[s->id & (n - 1)];
            b[s->id & (n - 1)] = s;
            s = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

static void table_insert(struct media *m, struct media_stream *s)
{
    struct media_stream **head = &m->buckets[s->id & (m->nbuckets - 1)];
    s->hnext = *head;
    *head = s;
    m->count++;
}

static void table_unlink(struct media *m, struct media_stream *s)
{
    for (struct media_stream **pp = &m->buckets[s->id & (m->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            m->count--;
            return;
        }
    }
}

/* ---- commands (media thread) ---- */

void media_stream_destroy(struct media *m, struct media_stream *s)
{
    media_tx_release(m, s);
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    if (s->rtcp_fd >= 0) {
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, s->rtcp_fd, NULL);
        close(s->rtcp_fd);
    }
    free(s->ring);
    free(s);
}

/* RTCP on RTP port + 1 of the stream's own address: bind it once (a stream opened on port 0 has it from
 * the open, reserved with its RTP port).  0 or -errno with err. */
static int open_rtcp_socket(struct media *m, struct media_stream *s, struct media_cmd *c)
{
    if (s->rtcp_fd >= 0)
        return 0;
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(s->fd, (struct sockaddr *)&local, &len) < 0)
        return -errno;
    uint16_t port = (uint16_t)(media_addr_port(&local) + 1);
    if (local.ss_family == AF_INET)
        ((struct sockaddr_in *)&local)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&local)->sin6_port = htons(port);
    int fd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&local, len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        media_set_err(c->err, c->errlen, e, "cannot bind the RTCP port %u", (unsigned)port);
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->ref_rtcp};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        close(fd);
        media_set_err(c->err, c->errlen, e, "epoll_ctl");
        return -e;
    }
    s->rtcp_fd = fd;
    return 0;
}

static int cmd_open(struct media *m, struct media_cmd *c)
{
    struct media_stream *s = c->stream;
    pthread_mutex_lock(&m->table_lock);
    int r = 0;
    if (m->count + 1 > m->nbuckets * 2)
        r = table_grow(m);
    uint32_t id = 0;
    if (r == 0) {
        do {
            id = m->next_id++;
        } while (id == 0 || media_table_find(m, id) != NULL);
    }
    pthread_mutex_unlock(&m->table_lock);
    if (r < 0) {
        media_set_err(c->err, c->errlen, 0, "no memory for the stream table");
        return r;
    }
    s->id = id;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->ref_rtp};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        int e = errno;
        media_set_err(c->err, c->errlen, e, "epoll_ctl");
        return -e;
    }
    struct epoll_event rev = {.events = EPOLLIN, .data.ptr = &s->ref_rtcp};
    if (s->rtcp_fd >= 0 && epoll_ctl(m->epfd, EPOLL_CTL_ADD, s->rtcp_fd, &rev) < 0) {
        int e = errno;
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        media_set_err(c->err, c->errlen, e, "epoll_ctl");
        return -e;
    }
    pthread_mutex_lock(&m->table_lock);
    table_insert(m, s);
    pthread_mutex_unlock(&m->table_lock);
    c->id = id;
    return 0;
}

static struct media_stream *find_stream(struct media *m, uint32_t id)
{
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = media_table_find(m, id);
    pthread_mutex_unlock(&m->table_lock);
    return s;
}

static void set_sending(struct media *m, struct media_stream *s, int on)
{
    s->sending = on;
    pthread_mutex_lock(&m->table_lock);
    s->stats.sending = on;
    pthread_mutex_unlock(&m->table_lock);
}

static int cmd_start(struct media *m, struct media_cmd *c)
{
    struct media_stream *s = find_stream(m, c->id);
    if (s == NULL)
        return -ENOENT;
    struct sockaddr_storage remote = c->remote;
    socklen_t remote_len = c->remote_len;
    if (remote_len != 0 && remote.ss_family != s->family) {
        if (s->family == AF_INET6 && remote.ss_family == AF_INET) {
            /* an IPv6 socket reaches an IPv4 peer through the v4-mapped address */
            struct sockaddr_in v4;
            memcpy(&v4, &remote, sizeof v4);
            struct sockaddr_in6 v6;
            memset(&v6, 0, sizeof v6);
            v6.sin6_family = AF_INET6;
            v6.sin6_port = v4.sin_port;
            v6.sin6_addr.s6_addr[10] = 0xff;
            v6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&v6.sin6_addr.s6_addr[12], &v4.sin_addr, 4);
            memset(&remote, 0, sizeof remote);
            memcpy(&remote, &v6, sizeof v6);
            remote_len = sizeof v6;
        } else {
            media_set_err(c->err, c->errlen, 0, "remote %s is IPv6 but the stream is bound to an IPv4 address",
                    c->cfg.remote_host);
            return -EINVAL;
        }
    }
    const struct media_stream_cfg *cfg = &c->cfg;
    if (cfg->rtcp_interval_ms > 0 && !cfg->rtcp_mux) {
        int r = open_rtcp_socket(m, s, c);
        if (r < 0)
            return r;
    }
    uint64_t now = media_mono_ms();
    uint32_t samples = cfg->ptime_ms * MEDIA_SAMPLES_PER_MS;
    if (s->sent_any) {
        /* keep the timestamp running in real time across a stop/start */
        uint64_t elapsed = (now - s->last_send_ms) * MEDIA_SAMPLES_PER_MS;
        if (elapsed > s->samples)
            s->ts += (uint32_t)(elapsed - s->samples);
    }
    if (cfg->source == MEDIA_SRC_TONE)
        rtp_gen_init_tone(&s->gen, cfg->payload_type, cfg->tone_hz, cfg->tone_dbov);
    else if (cfg->source == MEDIA_SRC_SILENCE)
        rtp_gen_init_silence(&s->gen, cfg->payload_type);
    s->source = cfg->source;
    s->payload_type = (uint8_t)cfg->payload_type;
    s->ptime_ms = cfg->ptime_ms;
    s->samples = samples;
    s->remote = remote;
    s->remote_len = remote_len;
    s->marker_next = 1;
    s->echo_have_offset = 0;
    s->send_start_ms = now + c->phase_ms;
    s->send_k = 0;
    /* what the caller prepared: taken, the old ones released */
    media_tx_release(m, s);
    s->clip = c->clip;
    c->clip = NULL;
    s->clip_i = 0;
    s->clip_round = 0;
    s->clip_loop = cfg->pcap_loop;
    s->clip_start_us = media_mono_ns() / 1000u + (uint64_t)c->phase_ms * 1000u;
    s->clip_ts_base = s->ts;
    s->dtmf_pt = (uint8_t)(cfg->dtmf_pt ? cfg->dtmf_pt : DTMF_DEFAULT_PT);
    if (c->pend != NULL) {
        s->pend = c->pend;
        c->pend = NULL;
        s->impaired = 1;
        impair_init(&s->impair, &cfg->impair);
    }
    if (c->srtp.tx != NULL) {
        s->srtp = c->srtp;
        memset(&c->srtp, 0, sizeof c->srtp);
        s->srtp_on = 1;
    }
    s->rtcp_interval_ms = cfg->rtcp_interval_ms;
    s->rtcp_mux = cfg->rtcp_mux;
    s->rtcp_remote_len = 0;
    if (remote_len != 0 && s->rtcp_interval_ms > 0) {
        s->rtcp_remote = remote;
        s->rtcp_remote_len = remote_len;
        uint16_t port = (uint16_t)(media_addr_port(&remote) + (s->rtcp_mux ? 0 : 1));
        if (remote.ss_family == AF_INET)
            ((struct sockaddr_in *)&s->rtcp_remote)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&s->rtcp_remote)->sin6_port = htons(port);
    }
    if (s->rtcp_interval_ms > 0)
        twheel_add(&m->wheel, &s->rtimer, now + c->phase_ms + s->rtcp_interval_ms);
    set_sending(m, s, 1);
    if (s->source == MEDIA_SRC_SILENCE || s->source == MEDIA_SRC_TONE || s->source == MEDIA_SRC_PCAP)
        twheel_add(&m->wheel, &s->timer, now + c->phase_ms); /* first packet at once, or at its phase */
    return 0;
}

static int cmd_stop(struct media *m, struct media_cmd *c)
{
    struct media_stream *s = find_stream(m, c->id);
    if (s == NULL)
        return -ENOENT;
    twheel_remove(&m->wheel, &s->timer);
    set_sending(m, s, 0);
    return 0;
}

static int cmd_dtmf(struct media *m, struct media_cmd *c)
{
    struct media_stream *s = find_stream(m, c->id);
    if (s == NULL)
        return -ENOENT;
    if (!s->sending || s->remote_len == 0 || s->source == MEDIA_SRC_PCAP) {
        media_set_err(c->err, c->errlen, 0, "telephone-events need a started silence, tone, echo or none stream with a remote address");
        return -EINVAL;
    }
    size_t n = strlen(c->digits);
    if (n > MEDIA_DTMF_MAX_DIGITS - s->dtmf_qlen) {
        media_set_err(c->err, c->errlen, 0, "more than %u digits queued", MEDIA_DTMF_MAX_DIGITS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        s->dtmf_queue[(s->dtmf_qhead + s->dtmf_qlen) % MEDIA_DTMF_MAX_DIGITS] = c->digits[i];
        s->dtmf_qlen++;
    }
    s->dtmf_total = c->duration_ms * MEDIA_SAMPLES_PER_MS;
    s->dtmf_volume = c->volume;
    media_tx_kick_dtmf(m, s, media_mono_ms());
    return 0;
}

static int cmd_close(struct media *m, struct media_cmd *c)
{
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = media_table_find(m, c->id);
    if (s != NULL)
        table_unlink(m, s);
    pthread_mutex_unlock(&m->table_lock);
    if (s == NULL)
        return -ENOENT;
    media_stream_destroy(m, s);
    return 0;
}

/* Run the queued commands. Returns 1 when the engine is stopping (the queue is then failed). */
int media_process_commands(struct media *m)
{
    pthread_mutex_lock(&m->cmd_lock);
    struct media_cmd *list = m->cmd_head;
    m->cmd_head = m->cmd_tail = NULL;
    int stopping = m->stopping;
    pthread_mutex_unlock(&m->cmd_lock);

    /* The callers wait until `done`, so the commands and their `next` links stay valid until then. */
    for (struct media_cmd *c = list; c != NULL; c = c->next) {
        if (stopping) {
            c->result = -ESHUTDOWN;
            continue;
        }
        switch (c->op) {
        case MEDIA_CMD_OPEN:
            c->result = cmd_open(m, c);
            break;
        case MEDIA_CMD_START:
            c->result = cmd_start(m, c);
            break;
        case MEDIA_CMD_STOP:
            c->result = cmd_stop(m, c);
            break;
        case MEDIA_CMD_CLOSE:
            c->result = cmd_close(m, c);
            break;
        case MEDIA_CMD_DTMF:
            c->result = cmd_dtmf(m, c);
            break;
        default:
            c->result = -EINVAL;
            break;
        }
    }
    pthread_mutex_lock(&m->cmd_lock);
    for (struct media_cmd *c = list, *next; c != NULL; c = next) {
        next = c->next;
        c->done = 1;
    }
    pthread_cond_broadcast(&m->cmd_cond);
    pthread_mutex_unlock(&m->cmd_lock);
    return stopping;
}