/* Engine lifecycle, the signalling thread's epoll loop, the event queue and timers. */
#include "engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RX_BATCH 32
#define RX_MAX_PER_WAKE 512
#define RX_BUFSZ 65536
#define TXQ_MAX 64 /* datagrams queued on one UDP socket before an early sendmmsg */

/* UDP datagrams of one loop iteration: copies in one buffer, sent with sendmmsg at the end of the iteration. */
struct udp_txd {
    struct netaddr to;
    size_t off, len;
    uint32_t txn_id, dialog_id;
};
struct udp_txq {
    struct udp_txd d[TXQ_MAX];
    size_t n;
    char *buf;
    size_t used, cap;
};

void engine_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint64_t engine_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t engine_new_id(struct engine *e)
{
    if (++e->next_id == 0)
        e->next_id = 1;
    return e->next_id;
}

static uint64_t rng_next(struct engine *e)
{
    /* xorshift64*, seeded from getrandom(); ids and tags need uniqueness, not secrecy */
    uint64_t x = e->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void engine_rand_hex(struct engine *e, char *out, size_t nhex)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = 0;
    for (size_t i = 0; i < nhex; i++) {
        if (i % 16 == 0)
            r = rng_next(e);
        out[i] = hex[r & 15];
        r >>= 4;
    }
    out[nhex] = '\0';
}

void engine_wake(struct engine *e)
{
    uint64_t one = 1;
    ssize_t n = write(e->wakefd, &one, sizeof(one));
    (void)n;
}

struct engine_event *engine_event_new(enum engine_event_kind kind)
{
    struct engine_event *ev = calloc(1, sizeof(*ev));
    if (ev)
        ev->kind = kind;
    return ev;
}

void engine_event_set_src(struct engine_event *ev, const struct netaddr *a)
{
    netaddr_format(a, ev->src_host, sizeof(ev->src_host), &ev->src_port);
}

void engine_event_free(struct engine_event *ev)
{
    if (ev == NULL)
        return;
    sipmsg_free(ev->msg);
    free(ev);
}

void engine_push_event(struct engine *e, struct engine_event *ev)
{
    if (ev == NULL)
        return;
    if (e->fast && engine_fast_on_event(e, ev)) {
        engine_event_free(ev);
        return;
    }
    engine_queue_event(e, ev);
}

void engine_queue_event(struct engine *e, struct engine_event *ev)
{
    if (ev == NULL)
        return;
    pthread_mutex_lock(&e->evq_lock);
    if (e->evq_len >= e->cfg.max_events) {
        e->evq_dropped++;
        pthread_mutex_unlock(&e->evq_lock);
        engine_event_free(ev);
        return;
    }
    ev->next = NULL;
    if (e->evq_tail)
        e->evq_tail->next = ev;
    else
        e->evq_head = ev;
    e->evq_tail = ev;
    if (e->evq_len++ == 0) {
        /* inside a loop iteration the reader is woken once, at its end (fewer wake-ups, larger batches);
         * tx_batching is only set by the signalling thread while it holds engine->lock, as the caller does */
        if (e->tx_batching) {
            e->evq_kick_pending = 1;
        } else {
            uint64_t one = 1;
            ssize_t n = write(e->evfd, &one, sizeof(one));
            (void)n;
        }
    }
    pthread_mutex_unlock(&e->evq_lock);
}

size_t engine_take(struct engine *e, size_t max, struct engine_event **head)
{
    size_t n = 0;
    *head = NULL;
    pthread_mutex_lock(&e->evq_lock);
    struct engine_event *first = e->evq_head, *last = NULL, *p = first;
    while (p && n < max) {
        last = p;
        p = p->next;
        n++;
    }
    if (n) {
        e->evq_head = p;
        if (p == NULL)
            e->evq_tail = NULL;
        last->next = NULL;
        e->evq_len -= n;
        *head = first;
    }
    if (e->evq_len == 0) {
        uint64_t v;
        ssize_t r = read(e->evfd, &v, sizeof(v));
        (void)r;
    }
    pthread_mutex_unlock(&e->evq_lock);
    return n;
}

uint64_t engine_events_dropped(struct engine *e)
{
    pthread_mutex_lock(&e->evq_lock);
    uint64_t d = e->evq_dropped;
    pthread_mutex_unlock(&e->evq_lock);
    return d;
}

void engine_interrupt(struct engine *e)
{
    uint64_t one = 1;
    ssize_t n = write(e->evfd, &one, sizeof(one));
    (void)n;
}

int engine_event_fd(const struct engine *e)
{
    return e->evfd;
}

int engine_wait(struct engine *e, int timeout_ms)
{
    struct pollfd p = {.fd = e->evfd, .events = POLLIN};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0 ? 1 : 0;
}

struct transport *engine_transport(struct engine *e, uint32_t id)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    return strmap_get(&e->transports, k, 4);
}

int engine_tx_mark(struct engine *e, uint32_t id, int is_conn)
{
    if (e->ntx_pending == e->captx_pending) {
        size_t nc = e->captx_pending ? e->captx_pending * 2 : 64;
        struct tx_pend *n = realloc(e->tx_pending, nc * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        e->tx_pending = n;
        e->captx_pending = nc;
    }
    e->tx_pending[e->ntx_pending++] = (struct tx_pend){id, is_conn};
    return 0;
}

void engine_udp_txq_free(struct transport *tp)
{
    if (tp->txq) {
        free(tp->txq->buf);
        free(tp->txq);
        tp->txq = NULL;
    }
}

static int udp_send_now(struct transport *tp, const struct netaddr *to, const char *data, size_t len)
{
    ssize_t n;
    do {
        n = sendto(tp->fd, data, len, MSG_NOSIGNAL, (const struct sockaddr *)&to->ss, to->len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

/* A batched datagram could not be sent: the client transactions towards that peer end (as after an ICMP
 * error), or else the user gets a TRANSPORT_ERROR naming the transaction and dialog it belonged to. */
static void udp_report_failed(struct engine *e, struct transport *tp, const struct udp_txd *d, int en)
{
    char info[160];
    engine_set_err(info, sizeof(info), "send failed: %s", strerror(en));
    if (engine_fail_txns_to(e, tp->id, &d->to, info) > 0)
        return;
    struct engine_event *ev = engine_event_new(ENGINE_EV_TRANSPORT_ERROR);
    if (ev == NULL)
        return;
    ev->transport_id = tp->id;
    ev->txn_id = d->txn_id;
    ev->dialog_id = d->dialog_id;
    engine_event_set_src(ev, &d->to);
    memcpy(ev->info, info, sizeof(info) < sizeof(ev->info) ? sizeof(info) : sizeof(ev->info));
    engine_push_event(e, ev);
}

/* Send a transport's queued datagrams: sendmmsg until all went or one failed, reported on its own. */
static void udp_txq_flush(struct engine *e, struct transport *tp)
{
    struct udp_txq *q = tp->txq;
    if (q == NULL || q->n == 0)
        return;
    struct mmsghdr msgs[TXQ_MAX];
    struct iovec iov[TXQ_MAX];
    size_t n = q->n;
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = q->buf + q->d[i].off;
        iov[i].iov_len = q->d[i].len;
        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].msg_hdr.msg_name = &q->d[i].to.ss;
        msgs[i].msg_hdr.msg_namelen = q->d[i].to.len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    /* the queue is emptied first: reporting a failure may send (never into this queue: batching is off) */
    struct udp_txd failed[TXQ_MAX];
    int ferr[TXQ_MAX];
    size_t nfailed = 0, i = 0;
    int waited = 0;
    while (i < n) {
        int r = sendmmsg(tp->fd, msgs + i, (unsigned)(n - i), MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == ENOBUFS) && !waited) {
            /* the socket buffer is full: give it a moment once per flush before calling it a failure */
            struct pollfd pf = {.fd = tp->fd, .events = POLLOUT};
            (void)poll(&pf, 1, 10);
            waited = 1;
            continue;
        }
        if (r < 0) {
            failed[nfailed] = q->d[i];
            ferr[nfailed++] = errno;
            i++;
            continue;
        }
        e->tx_messages += (uint64_t)r;
        i += (size_t)r;
    }
    q->n = 0;
    q->used = 0;
    for (size_t k = 0; k < nfailed; k++)
        udp_report_failed(e, tp, &failed[k], ferr[k]);
}

static int udp_txq_add(struct engine *e, struct transport *tp, const struct netaddr *to, const char *data,
                       size_t len, uint32_t txn_id, uint32_t dialog_id)
{
    struct udp_txq *q = tp->txq;
    if (q == NULL) {
        q = tp->txq = calloc(1, sizeof(*q));
        if (q == NULL)
            return -ENOMEM;
    }
    if (!tp->tx_listed) {
        if (engine_tx_mark(e, tp->id, 0) < 0)
            return -ENOMEM;
        tp->tx_listed = 1;
    }
    if (q->n == TXQ_MAX) {
        int saved = e->tx_batching;
        e->tx_batching = 0;
        udp_txq_flush(e, tp);
        e->tx_batching = saved;
    }
    if (q->used + len > q->cap) {
        size_t nc = q->cap ? q->cap : 16384;
        while (nc < q->used + len)
            nc *= 2;
        char *nb = realloc(q->buf, nc);
        if (nb == NULL)
            return -ENOMEM;
        q->buf = nb;
        q->cap = nc;
    }
    memcpy(q->buf + q->used, data, len);
    q->d[q->n++] = (struct udp_txd){*to, q->used, len, txn_id, dialog_id};
    q->used += len;
    return 0;
}

/* Write everything queued in this loop iteration, then wake the event reader once if events came. */
static void engine_tx_flush(struct engine *e)
{
    e->tx_batching = 0;
    for (size_t i = 0; i < e->ntx_pending; i++) {
        struct tx_pend p = e->tx_pending[i];
        if (p.is_conn) {
            engine_conn_flush_pending(e, p.id);
            continue;
        }
        struct transport *tp = engine_transport(e, p.id);
        if (tp == NULL)
            continue;
        tp->tx_listed = 0;
        udp_txq_flush(e, tp);
    }
    e->ntx_pending = 0;
    pthread_mutex_lock(&e->evq_lock);
    int kick = e->evq_kick_pending && e->evq_len > 0;
    e->evq_kick_pending = 0;
    pthread_mutex_unlock(&e->evq_lock);
    if (kick) {
        uint64_t one = 1;
        ssize_t n = write(e->evfd, &one, sizeof(one));
        (void)n;
    }
}

int engine_sendto(struct engine *e, uint32_t transport_id, const struct netaddr *to, const char *data, size_t len)
{
    return engine_sendto_ctx(e, transport_id, to, data, len, 0, 0);
}

int engine_sendto_ctx(struct engine *e, uint32_t transport_id, const struct netaddr *to, const char *data,
                      size_t len, uint32_t txn_id, uint32_t dialog_id)
{
    struct transport *tp = engine_transport(e, transport_id);
    if (tp == NULL)
        return -ENOENT;
    if (tp->kind != TP_UDP) {
        int rc = engine_conn_send(e, tp, to, data, len);
        if (rc == 0)
            e->tx_messages++;
        return rc;
    }
    if (e->tx_batching && udp_txq_add(e, tp, to, data, len, txn_id, dialog_id) == 0)
        return 0; /* counted in tx_messages when sent */
    int rc = udp_send_now(tp, to, data, len);
    if (rc == 0)
        e->tx_messages++;
    return rc;
}

void engine_schedule_txn(struct engine *e, struct etxn *x)
{
    uint64_t d = txn_deadline(x->t);
    x->gen++;
    if (d == TXN_NO_DEADLINE)
        return;
    struct timer_entry te = {.deadline = d, .kind = TK_TXN, .id = x->id, .gen = x->gen};
    (void)timerheap_push(&e->timers, te);
}

void engine_schedule_dialog(struct engine *e, struct edialog *d)
{
    d->gen++;
    if (!d->awaiting_ack)
        return;
    struct timer_entry te = {.deadline = d->rtx_next, .kind = TK_DLG, .id = d->id, .gen = d->gen};
    (void)timerheap_push(&e->timers, te);
}

static void drain_transport(struct engine *e, struct transport *tp, char *bufs, struct mmsghdr *msgs,
                            struct iovec *iov, struct sockaddr_storage *addrs)
{
    size_t total = 0;
    while (total < RX_MAX_PER_WAKE) {
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = bufs + (size_t)i * RX_BUFSZ;
            iov[i].iov_len = RX_BUFSZ;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
        }
        int n = recvmmsg(tp->fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            struct netaddr src;
            memset(&src, 0, sizeof(src));
            memcpy(&src.ss, &addrs[i], sizeof(addrs[i]));
            src.len = msgs[i].msg_hdr.msg_namelen;
            if (msgs[i].msg_len == 0)
                continue; /* keep-alive or empty datagram */
            e->rx_messages++;
            engine_on_datagram(e, tp, bufs + (size_t)i * RX_BUFSZ, msgs[i].msg_len, &src);
        }
        total += (size_t)n;
        if (n < RX_BATCH)
            break;
    }
}

static void *engine_thread(void *arg)
{
    struct engine *e = arg;
    char *bufs = malloc((size_t)RX_BATCH * RX_BUFSZ);
    struct mmsghdr *msgs = calloc(RX_BATCH, sizeof(*msgs));
    struct iovec *iov = calloc(RX_BATCH, sizeof(*iov));
    struct sockaddr_storage *addrs = calloc(RX_BATCH, sizeof(*addrs));
    if (!bufs || !msgs || !iov || !addrs) {
        free(bufs);
        free(msgs);
        free(iov);
        free(addrs);
        return NULL;
    }
    struct epoll_event evs[64];
    while (!atomic_load(&e->stop)) {
        pthread_mutex_lock(&e->lock);
        uint64_t next = timerheap_next(&e->timers);
        pthread_mutex_unlock(&e->lock);
        int timeout = -1;
        if (next != UINT64_MAX) {
            uint64_t now = engine_now_ms();
            timeout = next <= now ? 0 : (next - now > 60000 ? 60000 : (int)(next - now));
        }
        int n = epoll_wait(e->epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (atomic_load(&e->stop))
            break;
        pthread_mutex_lock(&e->lock);
        e->tx_batching = 1;
        for (int i = 0; i < n; i++) {
            uint32_t id = evs[i].data.u32;
            if (id == 0) {
                uint64_t v;
                ssize_t r = read(e->wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            struct transport *tp = engine_transport(e, id);
            if (tp && tp->kind == TP_UDP) {
                if (evs[i].events & EPOLLERR)
                    engine_udp_on_error(e, tp);
                if (evs[i].events & EPOLLIN)
                    drain_transport(e, tp, bufs, msgs, iov, addrs);
            } else if (tp) {
                engine_tp_on_accept(e, tp);
            } else {
                struct conn *c = engine_conn_get(e, id);
                if (c)
                    engine_conn_on_io(e, c, evs[i].events);
            }
        }
        uint64_t now = engine_now_ms();
        struct timer_entry te;
        while (timerheap_pop_due(&e->timers, now, &te)) {
            if (te.kind == TK_CONN)
                engine_conn_on_timer(e, &te, now);
            else if (te.kind == TK_FAST || te.kind == TK_LOAD)
                engine_fast_on_timer(e, &te, now);
            else
                engine_on_timer(e, &te, now);
        }
        engine_tx_flush(e);
        pthread_mutex_unlock(&e->lock);
    }
    free(bufs);
    free(msgs);
    free(iov);
    free(addrs);
    return NULL;
}

struct engine *engine_new(const struct engine_cfg *cfg, char *err, size_t errlen)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        engine_set_err(err, errlen, "out of memory");
        return NULL;
    }
    if (cfg)
        e->cfg = *cfg;
    e->cfg.user_agent[sizeof(e->cfg.user_agent) - 1] = '\0';
    if (e->cfg.t1_ms == 0)
        e->cfg.t1_ms = 500;
    if (e->cfg.t2_ms == 0)
        e->cfg.t2_ms = 4000;
    if (e->cfg.t4_ms == 0)
        e->cfg.t4_ms = 5000;
    if (e->cfg.max_events == 0)
        e->cfg.max_events = 65536;
    e->tcfg.t1_ms = e->cfg.t1_ms;
    e->tcfg.t2_ms = e->cfg.t2_ms;
    e->tcfg.t4_ms = e->cfg.t4_ms;
    e->tcfg.reliable = 0;
    e->tcfg_reliable = e->tcfg;
    e->tcfg_reliable.reliable = 1;
    strmap_init(&e->transports);
    strmap_init(&e->txns);
    strmap_init(&e->txn_by_key);
    strmap_init(&e->dialogs);
    strmap_init(&e->dlg_by_key);
    strmap_init(&e->conns);
    strmap_init(&e->conn_by_peer);
    timerheap_init(&e->timers);
    e->epfd = e->wakefd = e->evfd = -1;
    if (getrandom(&e->rng, sizeof(e->rng), 0) != (ssize_t)sizeof(e->rng))
        e->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)e;
    e->rng |= 1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->evq_lock, NULL);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->epfd < 0 || e->wakefd < 0 || e->evfd < 0) {
        engine_set_err(err, errlen, "cannot create epoll/eventfd: %s", strerror(errno));
        engine_free(e);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0) {
        engine_set_err(err, errlen, "epoll_ctl: %s", strerror(errno));
        engine_free(e);
        return NULL;
    }
    int rc = pthread_create(&e->thread, NULL, engine_thread, e);
    if (rc != 0) {
        engine_set_err(err, errlen, "cannot start the signalling thread: %s", strerror(rc));
        engine_free(e);
        return NULL;
    }
    e->thread_started = 1;
    return e;
}

void engine_free(struct engine *e)
{
    if (e == NULL)
        return;
    if (e->thread_started) {
        atomic_store(&e->stop, 1);
        engine_wake(e);
        pthread_join(e->thread, NULL);
    }
    engine_fast_free(e);
    engine_free_all(e);
    struct engine_event *ev = e->evq_head;
    while (ev) {
        struct engine_event *n = ev->next;
        engine_event_free(ev);
        ev = n;
    }
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->wakefd >= 0)
        close(e->wakefd);
    if (e->evfd >= 0)
        close(e->evfd);
    timerheap_free(&e->timers);
    strmap_free(&e->transports);
    strmap_free(&e->txns);
    strmap_free(&e->txn_by_key);
    strmap_free(&e->dialogs);
    strmap_free(&e->dlg_by_key);
    strmap_free(&e->conns);
    strmap_free(&e->conn_by_peer);
    free(e->tx_pending);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->evq_lock);
    free(e);
}

int engine_transport_register(struct engine *e, struct transport *tp, char *err, size_t errlen)
{
    pthread_mutex_lock(&e->lock);
    tp->id = engine_new_id(e);
    unsigned char k[4];
    strmap_idkey(tp->id, k);
    int rc = strmap_put(&e->transports, k, 4, tp);
    if (rc == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tp->id};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, tp->fd, &ev) < 0) {
            rc = -errno;
            strmap_del(&e->transports, k, 4);
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (rc < 0)
        engine_set_err(err, errlen, "cannot register the transport: %s", strerror(-rc));
    return rc;
}

int engine_listen_addr(const char *host, uint16_t port, struct netaddr *a, char *err, size_t errlen)
{
    if (netaddr_set(a, host, port) < 0) {
        engine_set_err(err, errlen, "listen address '%.64s' is not a numeric IPv4 or IPv6 address", host ? host : "");
        return -EINVAL;
    }
    char hbuf[64];
    netaddr_format(a, hbuf, sizeof(hbuf), NULL);
    if (strcmp(hbuf, "0.0.0.0") == 0 || strcmp(hbuf, "::") == 0) {
        engine_set_err(err, errlen, "listen on a specific address, not the wildcard %s (it goes into Via and Contact)",
                       hbuf);
        return -EINVAL;
    }
    return 0;
}

int engine_listen_udp(struct engine *e, const char *host, uint16_t port, uint32_t *transport_id, uint16_t *bound_port,
                      char *err, size_t errlen)
{
    struct netaddr a;
    if (engine_listen_addr(host, port, &a, err, errlen) < 0)
        return -EINVAL;
    char hbuf[64];
    netaddr_format(&a, hbuf, sizeof(hbuf), NULL);
    int fd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        engine_set_err(err, errlen, "socket: %s", strerror(errno));
        return -errno;
    }
    int bufsz = 4 * 1024 * 1024;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    /* ICMP errors (port unreachable) into the error queue, read by engine_udp_on_error */
    int one = 1;
    if (a.ss.ss_family == AF_INET6)
        (void)setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one));
    else
        (void)setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
        int en = errno;
        engine_set_err(err, errlen, "cannot bind UDP %s port %u: %s", hbuf, port, strerror(en));
        close(fd);
        return -en;
    }
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0) {
        int en = errno;
        engine_set_err(err, errlen, "getsockname: %s", strerror(en));
        close(fd);
        return -en;
    }
    struct transport *tp = calloc(1, sizeof(*tp));
    if (tp == NULL) {
        close(fd);
        engine_set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    tp->fd = fd;
    tp->local = a;
    netaddr_format(&a, tp->host, sizeof(tp->host), &tp->port);
    int rc = engine_transport_register(e, tp, err, errlen);
    if (rc < 0) {
        close(fd);
        engine_udp_txq_free(tp);
        free(tp);
        return rc;
    }
    *transport_id = tp->id;
    *bound_port = tp->port;
    return 0;
}

void engine_get_counts(struct engine *e, struct engine_counts *out)
{
    pthread_mutex_lock(&e->lock);
    out->transports = e->transports.n;
    out->transactions = e->txns.n;
    out->dialogs = e->dialogs.n;
    out->connections = e->conns.n;
    out->rx_messages = e->rx_messages;
    out->tx_messages = e->tx_messages;
    out->retransmissions = e->retransmissions;
    out->parse_errors = e->parse_errors;
    out->conn_limit_hits = e->conn_limit_hits;
    pthread_mutex_unlock(&e->lock);
    pthread_mutex_lock(&e->evq_lock);
    out->pending_events = e->evq_len;
    out->events_dropped = e->evq_dropped;
    pthread_mutex_unlock(&e->evq_lock);
}
