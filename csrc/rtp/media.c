/* The RTP media engine: one thread, one timer wheel, many streams; see media.h.
 *
 * The media thread owns the epoll set, the timer wheel, and every stream's
 * sending and receiving state.  Other threads reach it only through commands
 * (struct media_cmd) that they queue under cmd_lock and wait for: a command
 * lives on the caller's stack and is finished when the media thread sets its
 * `done` flag under cmd_lock.  Statistics are the one piece of stream state
 * that other threads read; the media thread writes them, and the stream
 * table, under table_lock.  The two locks are never held together.
 */
#include "rtp/media.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rtp/gen.h"
#include "rtp/rtp_packet.h"
#include "rtp/rtp_stats.h"
#include "rtp/timerwheel.h"

#define MEDIA_RX_BATCH 16
#define MEDIA_RX_BUF 2048          /* larger datagrams are not RTP we can use: counted invalid */
#define MEDIA_RX_MAX_BATCHES 64    /* per readiness: a flooded socket cannot starve the others (level-triggered) */
#define MEDIA_MAX_LATE_MS 100      /* behind schedule by more than this: skip packets instead of bursting */
#define MEDIA_EVENTS 64
#define MEDIA_BUCKETS_MIN 64
#define MEDIA_EVEN_PORT_TRIES 32
#define MEDIA_SAMPLES_PER_MS (RTP_GEN_RATE / 1000)
#define MEDIA_TX_BUF (RTP_HEADER_LEN + MEDIA_PTIME_MAX * MEDIA_SAMPLES_PER_MS)
#define MEDIA_MAX_WAIT_NS 1000000000u /* wake at least once a second */

/* epoll_pwait2 (glibc 2.35, Linux 5.11) takes a nanosecond timeout, so that packets leave on the
 * millisecond they are due rather than up to a millisecond later; epoll_wait is the fallback. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define MEDIA_HAVE_EPOLL_PWAIT2 1
#else
#define MEDIA_HAVE_EPOLL_PWAIT2 0
#endif

struct media_stream {
    uint32_t id;
    int fd;
    int family;                 /* AF_INET or AF_INET6: the bound socket's */
    struct media_stream *hnext; /* hash chain of media->buckets */
    struct twheel_timer timer;  /* next packet of a silence/tone source */

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

    /* Receiving: media thread only. */
    struct rtp_seq rx_seq;
    struct rtp_jitter rx_jitter;
    int rx_have_ssrc;
    uint64_t rx_last_ns;

    /* Guarded by media->table_lock: written by the media thread, read by media_stream_stats. */
    struct media_stats stats;
};

enum media_cmd_op { MEDIA_CMD_OPEN, MEDIA_CMD_START, MEDIA_CMD_STOP, MEDIA_CMD_CLOSE };

struct media_cmd {
    enum media_cmd_op op;
    uint32_t id;                  /* START/STOP/CLOSE: the stream; OPEN: set by the media thread */
    struct media_stream *stream;  /* OPEN: handed to the media thread, which takes it on success */
    struct media_stream_cfg cfg;  /* START: validated by the caller */
    struct sockaddr_storage remote;
    socklen_t remote_len;         /* START: 0 when echoing to the source */
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

    /* cmd_lock guards cmd_head, cmd_tail, stopping, and `done`/`next` of queued commands.
     * cmd_cond is broadcast when commands are done. */
    pthread_mutex_t cmd_lock;
    pthread_cond_t cmd_cond;
    struct media_cmd *cmd_head, *cmd_tail;
    int stopping;

    /* table_lock guards buckets, nbuckets, count, closed, next_id and every stream's stats. */
    pthread_mutex_t table_lock;
    struct media_stream **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    int closed;
    uint32_t next_id;

    /* Media thread only. */
    int no_pwait2; /* the kernel lacks epoll_pwait2 */
    struct twheel wheel;
    struct mmsghdr rx_msgs[MEDIA_RX_BATCH];
    struct iovec rx_iov[MEDIA_RX_BATCH];
    struct sockaddr_storage rx_addr[MEDIA_RX_BATCH];
    uint8_t rx_buf[MEDIA_RX_BATCH][MEDIA_RX_BUF];
    uint8_t tx_buf[MEDIA_TX_BUF];
};

/* Write a reason into the caller's buffer (may be NULL); e != 0 appends strerror(e). */
__attribute__((format(printf, 4, 5))) static void set_err(char *err, size_t errlen, int e, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (e)
        snprintf(err, errlen, "%s: %s", what, strerror(e));
    else
        snprintf(err, errlen, "%s", what);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
    return mono_ns() / 1000000u;
}

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

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* ---- stream table (table_lock held by the caller) ---- */

static struct media_stream *table_find(struct media *m, uint32_t id)
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

/* ---- sending (media thread) ---- */

static void stream_sent(struct media *m, struct media_stream *s, ssize_t r, size_t payload_len)
{
    pthread_mutex_lock(&m->table_lock);
    if (r >= 0) {
        s->stats.tx_packets++;
        s->stats.tx_bytes += payload_len;
    } else {
        s->stats.tx_errors++;
    }
    pthread_mutex_unlock(&m->table_lock);
}

static ssize_t send_to(int fd, const uint8_t *buf, size_t len, const struct sockaddr_storage *to, socklen_t tolen)
{
    ssize_t r;
    do {
        r = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)to, tolen);
    } while (r < 0 && errno == EINTR);
    return r;
}

/* The timer of a silence/tone stream fired at `now`: send packet send_k, re-arm for the next. */
static void stream_send_due(struct media *m, struct media_stream *s, uint64_t now)
{
    if (!s->sending || (s->source != MEDIA_SRC_SILENCE && s->source != MEDIA_SRC_TONE))
        return;
    uint64_t due = s->send_start_ms + s->send_k * s->ptime_ms;
    if (now > due && now - due > MEDIA_MAX_LATE_MS) {
        /* The thread was held up: skip the packets that are hopelessly late, keeping the clock. */
        uint64_t missed = (now - due) / s->ptime_ms;
        s->send_k += missed;
        s->ts += (uint32_t)(missed * s->samples);
        rtp_gen_skip(&s->gen, missed * s->samples);
    }
    uint8_t *buf = m->tx_buf;
    size_t hl = rtp_packet_write_header(buf, sizeof m->tx_buf, s->marker_next, s->payload_type, s->seq, s->ts, s->ssrc);
    rtp_gen_fill(&s->gen, buf + hl, s->samples);
    ssize_t r = send_to(s->fd, buf, hl + s->samples, &s->remote, s->remote_len);
    s->marker_next = 0;
    s->seq++;
    s->ts += s->samples;
    s->send_k++;
    s->sent_any = 1;
    s->last_send_ms = now;
    stream_sent(m, s, r, s->samples);
    twheel_add(&m->wheel, &s->timer, s->send_start_ms + s->send_k * s->ptime_ms);
}

/* Echo one received packet's payload with the stream's own header. */
static void stream_echo(struct media *m, struct media_stream *s, const struct rtp_header *h, const uint8_t *pkt,
                        const struct sockaddr_storage *from, socklen_t fromlen)
{
    if (h->payload_len > sizeof m->tx_buf - RTP_HEADER_LEN)
        return;
    if (!s->echo_have_offset) {
        s->echo_ts_offset = s->ts - h->timestamp;
        s->echo_have_offset = 1;
    }
    uint32_t ts = h->timestamp + s->echo_ts_offset;
    size_t hl = rtp_packet_write_header(m->tx_buf, sizeof m->tx_buf, s->marker_next, s->payload_type, s->seq, ts,
                                        s->ssrc);
    memcpy(m->tx_buf + hl, pkt + h->payload_offset, h->payload_len);
    const struct sockaddr_storage *to = s->remote_len ? &s->remote : from;
    socklen_t tolen = s->remote_len ? s->remote_len : fromlen;
    ssize_t r = send_to(s->fd, m->tx_buf, hl + h->payload_len, to, tolen);
    s->marker_next = 0;
    s->seq++;
    s->ts = ts;
    s->sent_any = 1;
    s->last_send_ms = mono_ms();
    stream_sent(m, s, r, h->payload_len);
}

/* ---- receiving (media thread) ---- */

/* Account one datagram; table_lock held. Returns 1 when it is valid RTP (h filled). */
static int stream_account(struct media_stream *s, const uint8_t *pkt, size_t len, int truncated, uint64_t now_ns,
                          struct rtp_header *h)
{
    struct media_stats *st = &s->stats;
    if (truncated || rtp_packet_parse(pkt, len, h) != 0) {
        st->rx_invalid++;
        return 0;
    }
    if (s->rx_have_ssrc && h->ssrc != st->rx_ssrc) {
        /* a new source: restart sequence tracking and jitter, keep the counts so far */
        uint64_t lost = rtp_seq_lost(&s->rx_seq), late = s->rx_seq.late, dups = s->rx_seq.duplicates;
        rtp_seq_init(&s->rx_seq);
        s->rx_seq.lost_prior = lost;
        s->rx_seq.late = late;
        s->rx_seq.duplicates = dups;
        rtp_jitter_init(&s->rx_jitter);
    }
    s->rx_have_ssrc = 1;
    st->rx_ssrc = h->ssrc;
    st->rx_payload_type = h->payload_type;
    /* rx_packets counts every valid RTP packet, duplicates included */
    st->rx_packets++;
    st->rx_bytes += h->payload_len;
    enum rtp_seq_result sr = rtp_seq_update(&s->rx_seq, h->seq);
    st->rx_lost = rtp_seq_lost(&s->rx_seq);
    st->rx_out_of_order = s->rx_seq.late;
    st->rx_duplicates = s->rx_seq.duplicates;
    if (sr != RTP_SEQ_JUMP) {
        /* arrival in timestamp units (8000 Hz: this engine's codecs are G.711) */
        rtp_jitter_update(&s->rx_jitter, (double)now_ns * (RTP_GEN_RATE / 1e9), h->timestamp);
        st->jitter_ms = s->rx_jitter.jitter * 1000.0 / RTP_GEN_RATE;
    }
    uint64_t now_ms = now_ns / 1000000u;
    if (st->first_rx_ms == 0)
        st->first_rx_ms = now_ms ? now_ms : 1;
    else if (now_ns > s->rx_last_ns) {
        double gap = (double)(now_ns - s->rx_last_ns) / 1e6;
        if (gap > st->max_gap_ms)
            st->max_gap_ms = gap;
    }
    st->last_rx_ms = now_ms ? now_ms : 1;
    s->rx_last_ns = now_ns;
    return 1;
}

/* Drain the socket until EAGAIN, or until MEDIA_RX_MAX_BATCHES batches: epoll is level-triggered,
 * so what is left is read at the next turn of the loop, after the timers due meanwhile. */
static void stream_receive(struct media *m, struct media_stream *s)
{
    for (int batch = 0; batch < MEDIA_RX_MAX_BATCHES; batch++) {
        for (int i = 0; i < MEDIA_RX_BATCH; i++) {
            m->rx_iov[i].iov_base = m->rx_buf[i];
            m->rx_iov[i].iov_len = MEDIA_RX_BUF;
            memset(&m->rx_msgs[i], 0, sizeof m->rx_msgs[i]);
            m->rx_msgs[i].msg_hdr.msg_iov = &m->rx_iov[i];
            m->rx_msgs[i].msg_hdr.msg_iovlen = 1;
            m->rx_msgs[i].msg_hdr.msg_name = &m->rx_addr[i];
            m->rx_msgs[i].msg_hdr.msg_namelen = sizeof m->rx_addr[i];
        }
        int n = recvmmsg(s->fd, m->rx_msgs, MEDIA_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN: drained; anything else: try again at the next readiness */
        }
        uint64_t now_ns = mono_ns();
        struct rtp_header hdr[MEDIA_RX_BATCH];
        int valid[MEDIA_RX_BATCH];
        pthread_mutex_lock(&m->table_lock);
        for (int i = 0; i < n; i++) {
            int trunc = (m->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
            valid[i] = stream_account(s, m->rx_buf[i], m->rx_msgs[i].msg_len, trunc, now_ns, &hdr[i]);
        }
        pthread_mutex_unlock(&m->table_lock);
        if (s->sending && s->source == MEDIA_SRC_ECHO) {
            for (int i = 0; i < n; i++) {
                if (valid[i])
                    stream_echo(m, s, &hdr[i], m->rx_buf[i], &m->rx_addr[i], m->rx_msgs[i].msg_hdr.msg_namelen);
            }
        }
        if (n < MEDIA_RX_BATCH)
            return;
    }
}

/* ---- commands (media thread) ---- */

static void stream_destroy(struct media *m, struct media_stream *s)
{
    twheel_remove(&m->wheel, &s->timer);
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    free(s);
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
        } while (id == 0 || table_find(m, id) != NULL);
    }
    pthread_mutex_unlock(&m->table_lock);
    if (r < 0) {
        set_err(c->err, c->errlen, 0, "no memory for the stream table");
        return r;
    }
    s->id = id;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        int e = errno;
        set_err(c->err, c->errlen, e, "epoll_ctl");
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
    struct media_stream *s = table_find(m, id);
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
            set_err(c->err, c->errlen, 0, "remote %s is IPv6 but the stream is bound to an IPv4 address",
                    c->cfg.remote_host);
            return -EINVAL;
        }
    }
    const struct media_stream_cfg *cfg = &c->cfg;
    uint64_t now = mono_ms();
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
    s->send_start_ms = now;
    s->send_k = 0;
    set_sending(m, s, 1);
    if (s->source == MEDIA_SRC_SILENCE || s->source == MEDIA_SRC_TONE)
        twheel_add(&m->wheel, &s->timer, now); /* first packet at once */
    else
        twheel_remove(&m->wheel, &s->timer);
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

static int cmd_close(struct media *m, struct media_cmd *c)
{
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = table_find(m, c->id);
    if (s != NULL)
        table_unlink(m, s);
    pthread_mutex_unlock(&m->table_lock);
    if (s == NULL)
        return -ENOENT;
    stream_destroy(m, s);
    return 0;
}

/* Run the queued commands. Returns 1 when the engine is stopping (the queue is then failed). */
static int process_commands(struct media *m)
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

/* Wait for sockets or commands until the wheel's next due millisecond (TWHEEL_NEVER: no timer). */
static int media_wait(struct media *m, struct epoll_event *evs, int nevs, uint64_t due_ms)
{
    if (due_ms == TWHEEL_NEVER)
        return epoll_wait(m->epfd, evs, nevs, (int)(MEDIA_MAX_WAIT_NS / 1000000u));
    uint64_t now_ns = mono_ns();
    uint64_t due_ns = due_ms * 1000000u;
    uint64_t wait_ns = due_ns > now_ns ? due_ns - now_ns : 0;
    if (wait_ns > MEDIA_MAX_WAIT_NS)
        wait_ns = MEDIA_MAX_WAIT_NS;
#if MEDIA_HAVE_EPOLL_PWAIT2
    if (!m->no_pwait2) {
        struct timespec ts = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
        int n = epoll_pwait2(m->epfd, evs, nevs, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        m->no_pwait2 = 1;
    }
#endif
    return epoll_wait(m->epfd, evs, nevs, (int)((wait_ns + 999999u) / 1000000u)); /* rounded up: never early */
}

static void *media_thread_main(void *arg)
{
    struct media *m = arg;
    struct epoll_event evs[MEDIA_EVENTS];
    /* wake-ups within a microsecond of the deadline (the default slack is 50 us) */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    twheel_init(&m->wheel, mono_ms());
    for (;;) {
        uint64_t now = mono_ms();
        struct twheel_timer *t;
        while ((t = twheel_pop(&m->wheel, now)) != NULL)
            stream_send_due(m, t->arg, now);
        int n = media_wait(m, evs, MEDIA_EVENTS, twheel_next_due(&m->wheel));
        if (n < 0)
            continue; /* EINTR; nothing else can fail on a valid epoll fd */
        int commands = 0;
        /* Sockets first, then commands: a CLOSE frees a stream that a later event could name. */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                commands = 1;
            else
                stream_receive(m, evs[i].data.ptr);
        }
        if (commands) {
            uint64_t v;
            while (read(m->evfd, &v, sizeof v) < 0 && errno == EINTR) {
            }
            if (process_commands(m))
                break;
        }
    }
    /* Stopping: forget every stream. */
    pthread_mutex_lock(&m->table_lock);
    m->closed = 1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct media_stream *s = m->buckets[i];
        while (s != NULL) {
            struct media_stream *next = s->hnext;
            stream_destroy(m, s);
            s = next;
        }
        m->buckets[i] = NULL;
    }
    m->count = 0;
    pthread_mutex_unlock(&m->table_lock);
    return NULL;
}

/* Queue c and wait until the media thread has run it. */
static int media_submit(struct media *m, struct media_cmd *c)
{
    c->done = 0;
    c->next = NULL;
    c->result = 0;
    pthread_mutex_lock(&m->cmd_lock);
    if (m->stopping) {
        pthread_mutex_unlock(&m->cmd_lock);
        return -ESHUTDOWN;
    }
    if (m->cmd_tail)
        m->cmd_tail->next = c;
    else
        m->cmd_head = c;
    m->cmd_tail = c;
    pthread_mutex_unlock(&m->cmd_lock);
    uint64_t one = 1;
    while (write(m->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&m->cmd_lock);
    while (!c->done)
        pthread_cond_wait(&m->cmd_cond, &m->cmd_lock);
    pthread_mutex_unlock(&m->cmd_lock);
    return c->result;
}

/* ---- public API ---- */

struct media *media_new(char *err, size_t errlen)
{
    struct media *m = calloc(1, sizeof *m);
    if (m == NULL) {
        set_err(err, errlen, 0, "no memory for the media engine");
        return NULL;
    }
    m->epfd = -1;
    m->evfd = -1;
    m->next_id = 1;
    m->nbuckets = MEDIA_BUCKETS_MIN;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    int locks = 0;
    if (m->buckets == NULL) {
        set_err(err, errlen, 0, "no memory for the stream table");
        goto fail;
    }
    if (pthread_mutex_init(&m->cmd_lock, NULL) != 0)
        goto fail_lock;
    locks = 1;
    if (pthread_mutex_init(&m->table_lock, NULL) != 0)
        goto fail_lock;
    locks = 2;
    if (pthread_cond_init(&m->cmd_cond, NULL) != 0)
        goto fail_lock;
    locks = 3;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0) {
        set_err(err, errlen, errno, "epoll_create1");
        goto fail;
    }
    m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->evfd < 0) {
        set_err(err, errlen, errno, "eventfd");
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->evfd, &ev) < 0) {
        set_err(err, errlen, errno, "epoll_ctl");
        goto fail;
    }
    /* The media thread takes no signals: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&m->thread, NULL, media_thread_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        set_err(err, errlen, r, "cannot start the media thread");
        goto fail;
    }
    return m;

fail_lock:
    set_err(err, errlen, 0, "cannot initialise the media engine's locks");
fail:
    if (m->evfd >= 0)
        close(m->evfd);
    if (m->epfd >= 0)
        close(m->epfd);
    if (locks >= 3)
        pthread_cond_destroy(&m->cmd_cond);
    if (locks >= 2)
        pthread_mutex_destroy(&m->table_lock);
    if (locks >= 1)
        pthread_mutex_destroy(&m->cmd_lock);
    free(m->buckets);
    free(m);
    return NULL;
}

void media_shutdown(struct media *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->cmd_lock);
    int already = m->stopping;
    m->stopping = 1;
    pthread_mutex_unlock(&m->cmd_lock);
    if (already)
        return;
    uint64_t one = 1;
    while (write(m->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(m->thread, NULL);
}

void media_free(struct media *m)
{
    if (m == NULL)
        return;
    media_shutdown(m);
    close(m->evfd);
    close(m->epfd);
    pthread_cond_destroy(&m->cmd_cond);
    pthread_mutex_destroy(&m->table_lock);
    pthread_mutex_destroy(&m->cmd_lock);
    free(m->buckets);
    free(m);
}

/* Bind a non-blocking UDP socket to addr; port 0 picks an even port. Returns the fd or -errno. */
static int bind_socket(struct sockaddr_storage *addr, socklen_t addrlen, char *err, size_t errlen)
{
    int want_even = addr_port(addr) == 0;
    int odd[MEDIA_EVEN_PORT_TRIES];
    int nodd = 0;
    int fd = -1, r = 0;
    for (int attempt = 0; attempt < MEDIA_EVEN_PORT_TRIES; attempt++) {
        fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            r = -errno;
            set_err(err, errlen, errno, "socket");
            break;
        }
        if (bind(fd, (struct sockaddr *)addr, addrlen) < 0) {
            r = -errno;
            set_err(err, errlen, errno, "bind");
            break;
        }
        struct sockaddr_storage got;
        socklen_t gotlen = sizeof got;
        if (getsockname(fd, (struct sockaddr *)&got, &gotlen) < 0) {
            r = -errno;
            set_err(err, errlen, errno, "getsockname");
            break;
        }
        if (!want_even || addr_port(&got) % 2 == 0) {
            *addr = got;
            break;
        }
        odd[nodd++] = fd; /* keep it bound so the kernel offers another port next time */
        fd = -1;
    }
    for (int i = 0; i < nodd; i++)
        close(odd[i]);
    if (r == 0 && fd < 0) {
        r = -EADDRINUSE;
        set_err(err, errlen, 0, "no even UDP port was free");
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
        set_err(err, errlen, 0, "not a numeric IPv4 or IPv6 address: '%.63s'", host ? host : "");
        return -EINVAL;
    }
    struct media_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        set_err(err, errlen, 0, "no memory for a stream");
        return -ENOMEM;
    }
    int fd = bind_socket(&addr, addrlen, err, errlen);
    if (fd < 0) {
        free(s);
        return fd;
    }
    uint8_t rnd[10];
    int r = random_bytes(rnd, sizeof rnd);
    if (r < 0) {
        set_err(err, errlen, -r, "no random bytes for SSRC and sequence");
        close(fd);
        free(s);
        return r;
    }
    s->fd = fd;
    s->family = addr.ss_family;
    twheel_timer_init(&s->timer, s);
    memcpy(&s->ssrc, rnd, 4);
    memcpy(&s->seq, rnd + 4, 2);
    memcpy(&s->ts, rnd + 6, 4);
    rtp_seq_init(&s->rx_seq);
    rtp_jitter_init(&s->rx_jitter);
    s->stats.rx_payload_type = -1;

    struct media_cmd c;
    memset(&c, 0, sizeof c);
    c.op = MEDIA_CMD_OPEN;
    c.stream = s;
    c.err = err;
    c.errlen = errlen;
    r = media_submit(m, &c);
    if (r < 0) {
        if (r == -ESHUTDOWN)
            set_err(err, errlen, 0, "the media engine is closed");
        close(fd);
        free(s);
        return r;
    }
    *id = c.id;
    *bound_port = addr_port(&addr);
    return 0;
}

int media_stream_start(struct media *m, uint32_t id, const struct media_stream_cfg *cfg, char *err, size_t errlen)
{
    if (m == NULL || cfg == NULL)
        return -EINVAL;
    struct media_cmd c;
    memset(&c, 0, sizeof c);
    c.op = MEDIA_CMD_START;
    c.id = id;
    c.cfg = *cfg;
    c.cfg.remote_host[sizeof c.cfg.remote_host - 1] = '\0';
    c.err = err;
    c.errlen = errlen;
    struct media_stream_cfg *k = &c.cfg;

    if (k->source != MEDIA_SRC_SILENCE && k->source != MEDIA_SRC_TONE && k->source != MEDIA_SRC_ECHO &&
        k->source != MEDIA_SRC_NONE) {
        set_err(err, errlen, 0, "unknown media source");
        return -EINVAL;
    }
    if (k->ptime_ms < MEDIA_PTIME_MIN || k->ptime_ms > MEDIA_PTIME_MAX) {
        set_err(err, errlen, 0, "ptime must be 5..200 ms");
        return -EINVAL;
    }
    if (k->payload_type < 0 || k->payload_type > 127 || (k->payload_type >= 72 && k->payload_type <= 76)) {
        set_err(err, errlen, 0, "payload type must be 0..127 and not 72..76 (RTCP)");
        return -EINVAL;
    }
    struct rtp_gen probe;
    if (k->source == MEDIA_SRC_SILENCE || k->source == MEDIA_SRC_TONE) {
        if (k->payload_type != RTP_PT_PCMU && k->payload_type != RTP_PT_PCMA) {
            set_err(err, errlen, 0, "silence and tone sources need payload type 0 (PCMU) or 8 (PCMA)");
            return -EINVAL;
        }
        if (k->source == MEDIA_SRC_TONE && rtp_gen_init_tone(&probe, k->payload_type, k->tone_hz, k->tone_dbov) < 0) {
            set_err(err, errlen, 0, "tone needs 0 < tone_hz < 4000 and dbov <= 0");
            return -EINVAL;
        }
    }
    int need_remote = k->source == MEDIA_SRC_SILENCE || k->source == MEDIA_SRC_TONE || k->remote_port != 0;
    if (need_remote) {
        if (k->remote_port == 0) {
            set_err(err, errlen, 0, "remote port 0 is only allowed for the echo and none sources");
            return -EINVAL;
        }
        if (parse_addr(k->remote_host, k->remote_port, 0, &c.remote, &c.remote_len) < 0) {
            set_err(err, errlen, 0, "remote host is not a numeric IPv4 or IPv6 address: '%.63s'", k->remote_host);
            return -EINVAL;
        }
    } else {
        c.remote_len = 0;
    }
    int r = media_submit(m, &c);
    if (r == -ESHUTDOWN)
        set_err(err, errlen, 0, "the media engine is closed");
    else if (r == -ENOENT)
        set_err(err, errlen, 0, "no such stream");
    return r;
}

int media_stream_stop(struct media *m, uint32_t id)
{
    if (m == NULL)
        return -EINVAL;
    struct media_cmd c;
    memset(&c, 0, sizeof c);
    c.op = MEDIA_CMD_STOP;
    c.id = id;
    return media_submit(m, &c);
}

int media_stream_close(struct media *m, uint32_t id)
{
    if (m == NULL)
        return -EINVAL;
    struct media_cmd c;
    memset(&c, 0, sizeof c);
    c.op = MEDIA_CMD_CLOSE;
    c.id = id;
    return media_submit(m, &c);
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
        struct media_stream *s = table_find(m, id);
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
