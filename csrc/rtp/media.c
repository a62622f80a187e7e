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

#include "rtp/media_int.h"

#define MEDIA_EVENTS 64
#define MEDIA_BUCKETS_MIN 64
#define MEDIA_EVEN_PORT_TRIES 32
#define MEDIA_MAX_WAIT_NS 1000000000u /* wake at least once a second */

/* epoll_pwait2 (glibc 2.35, Linux 5.11) takes a nanosecond timeout, so that packets leave on the
 * millisecond they are due rather than up to a millisecond later; epoll_wait is the fallback. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define MEDIA_HAVE_EPOLL_PWAIT2 1
#else
#define MEDIA_HAVE_EPOLL_PWAIT2 0
#endif

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

/* ---- commands (media thread) ---- */

static void stream_destroy(struct media *m, struct media_stream *s)
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

/* RTCP on RTP port + 1 of the stream's own address: bind it once. 0 or -errno with err. */
static int open_rtcp_socket(struct media *m, struct media_stream *s, struct media_cmd *c)
{
    if (s->rtcp_fd >= 0)
        return 0;
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(s->fd, (struct sockaddr *)&local, &len) < 0)
        return -errno;
    uint16_t port = (uint16_t)(addr_port(&local) + 1);
    if (local.ss_family == AF_INET)
        ((struct sockaddr_in *)&local)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&local)->sin6_port = htons(port);
    int fd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&local, len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        set_err(c->err, c->errlen, e, "cannot bind the RTCP port %u", (unsigned)port);
        return -e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->ref_rtcp};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        close(fd);
        set_err(c->err, c->errlen, e, "epoll_ctl");
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
        } while (id == 0 || table_find(m, id) != NULL);
    }
    pthread_mutex_unlock(&m->table_lock);
    if (r < 0) {
        set_err(c->err, c->errlen, 0, "no memory for the stream table");
        return r;
    }
    s->id = id;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->ref_rtp};
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
        uint16_t port = (uint16_t)(addr_port(&remote) + (s->rtcp_mux ? 0 : 1));
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
        set_err(c->err, c->errlen, 0, "telephone-events need a started silence, tone, echo or none stream with a remote address");
        return -EINVAL;
    }
    size_t n = strlen(c->digits);
    if (n > MEDIA_DTMF_MAX_DIGITS - s->dtmf_qlen) {
        set_err(c->err, c->errlen, 0, "more than %u digits queued", MEDIA_DTMF_MAX_DIGITS);
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

/* Wait for sockets or commands until the wheel's next due millisecond (TWHEEL_NEVER: no timer). */
static int media_wait(struct media *m, struct epoll_event *evs, int nevs, uint64_t due_ms)
{
    if (due_ms == TWHEEL_NEVER)
        return epoll_wait(m->epfd, evs, nevs, (int)(MEDIA_MAX_WAIT_NS / 1000000u));
    uint64_t now_ns = media_mono_ns();
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
    twheel_init(&m->wheel, media_mono_ms());
    for (;;) {
        uint64_t now = media_mono_ms();
        struct twheel_timer *t;
        while ((t = twheel_pop(&m->wheel, now)) != NULL)
            media_tx_timer(m, t->arg, t, now);
        media_tx_flush(m); /* every packet of this millisecond */
        int n = media_wait(m, evs, MEDIA_EVENTS, twheel_next_due(&m->wheel));
        if (n < 0)
            continue; /* EINTR; nothing else can fail on a valid epoll fd */
        int commands = 0;
        /* Sockets first, then commands: a CLOSE frees a stream that a later event could name. */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                commands = 1;
            else
                media_rx_ready(m, evs[i].data.ptr);
        }
        media_tx_flush(m); /* the echoes; before commands, which may free a queued packet's stream */
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

/* Queue the n commands of cmds with one wake-up, and wait until the
 * media thread has run them all: one hand-over instead of one per command, which is what makes starting
 * thousands of streams quick on a loaded machine.  0, or -ESHUTDOWN (then none was queued). */
static int media_submit_many(struct media *m, struct media_cmd *cmds, size_t n)
{
    pthread_mutex_lock(&m->cmd_lock);
    if (m->stopping) {
        pthread_mutex_unlock(&m->cmd_lock);
        return -ESHUTDOWN;
    }
    for (size_t i = 0; i < n; i++) {
        struct media_cmd *c = &cmds[i];
        c->next = NULL;
        c->done = 0;
        c->result = 0;
        if (m->cmd_tail)
            m->cmd_tail->next = c;
        else
            m->cmd_head = c;
        m->cmd_tail = c;
    }
    pthread_mutex_unlock(&m->cmd_lock);
    uint64_t one = 1;
    while (write(m->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&m->cmd_lock);
    for (size_t i = 0; i < n; i++)
        while (!cmds[i].done)
            pthread_cond_wait(&m->cmd_cond, &m->cmd_lock);
    pthread_mutex_unlock(&m->cmd_lock);
    return 0;
}

/* Queue c and wait until the media thread has run it. */
static int media_submit(struct media *m, struct media_cmd *c)
{
    int r = media_submit_many(m, c, 1);
    return r < 0 ? r : c->result;
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
    pthread_setname_np(m->thread, "pysip-media"); /* found by name for CPU figures */
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
    s->rtcp_fd = -1;
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
            set_err(err, errlen, 0, "the media engine is closed");
        close(fd);
        free(s);
        return r;
    }
    *id = c.id;
    *bound_port = addr_port(&addr);
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
    if (impair_cfg_check(&k->impair) < 0) {
        set_err(err, errlen, 0, "impairments need probabilities in 0..1 and a jitter bound of 0..1000 ms");
        return -EINVAL;
    }
    if (k->dtmf_pt < 0 || k->dtmf_pt > 127 || (k->dtmf_pt != 0 && k->dtmf_pt == k->payload_type)) {
        set_err(err, errlen, 0, "telephone-event payload type must be 0..127 and differ from the audio's");
        return -EINVAL;
    }
    if (k->rtcp_interval_ms > 0 && k->rtcp_interval_ms < 10) {
        set_err(err, errlen, 0, "RTCP interval must be 0 (off) or at least 10 ms");
        return -EINVAL;
    }
    if (k->srtp_suite != SRTP_SUITE_NONE && srtp_suite_key_len(k->srtp_suite) == 0) {
        set_err(err, errlen, 0, "unknown SRTP suite");
        return -EINVAL;
    }
    int need_remote = k->source == MEDIA_SRC_SILENCE || k->source == MEDIA_SRC_TONE || k->source == MEDIA_SRC_PCAP ||
                      k->remote_port != 0;
    if (need_remote) {
        if (k->remote_port == 0) {
            set_err(err, errlen, 0, "remote port 0 is only allowed for the echo and none sources");
            return -EINVAL;
        }
        if (parse_addr(k->remote_host, k->remote_port, 0, &c->remote, &c->remote_len) < 0) {
            set_err(err, errlen, 0, "remote host is not a numeric IPv4 or IPv6 address: '%.63s'", k->remote_host);
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
            set_err(err, errlen, 0, "no memory for impairments");
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
        set_err(err, errlen, 0, "the media engine is closed");
    else if (r == -ENOENT)
        set_err(err, errlen, 0, "no such stream");
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
        set_err(err, errlen, 0, "no memory for %zu start commands", n);
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

int media_stream_dtmf(struct media *m, uint32_t id, const char *digits, uint32_t duration_ms, uint8_t volume,
                      char *err, size_t errlen)
{
    if (m == NULL || digits == NULL)
        return -EINVAL;
    size_t n = strnlen(digits, MEDIA_DTMF_MAX_DIGITS + 1);
    if (n == 0 || n > MEDIA_DTMF_MAX_DIGITS) {
        set_err(err, errlen, 0, "1..%u digits are needed", MEDIA_DTMF_MAX_DIGITS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (dtmf_event_code(digits[i]) < 0) {
            set_err(err, errlen, 0, "'%c' is not a DTMF digit (0-9, *, #, A-D)", digits[i]);
            return -EINVAL;
        }
    }
    if (duration_ms < 10 || duration_ms > 5000 || volume > 63) {
        set_err(err, errlen, 0, "duration must be 10..5000 ms and volume 0..63");
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
        set_err(err, errlen, 0, "the media engine is closed");
    return r;
}

int media_stream_dtmf_events(struct media *m, uint32_t id, struct dtmf_event *out, size_t max, size_t *n)
{
    if (m == NULL || n == NULL || (out == NULL && max > 0))
        return -EINVAL;
    int r = 0;
    *n = 0;
    pthread_mutex_lock(&m->table_lock);
    struct media_stream *s = m->closed ? NULL : table_find(m, id);
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
    struct media_stream *s = m->closed ? NULL : table_find(m, id);
    if (m->closed)
        r = -ESHUTDOWN;
    else if (s == NULL)
        r = -ENOENT;
    else
        r = tone_detect(s->ring ? s->ring : &empty, hz, window_ms * MEDIA_SAMPLES_PER_MS, out);
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
