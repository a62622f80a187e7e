/* Stream transports (TCP, TLS; RFC 3261 18): listening sockets, connections opened and accepted,
 * connection reuse, framing and keep-alives, bounded write queues, idle close, non-blocking connects
 * and TLS handshakes on the signalling thread's epoll; and the ICMP error queue of UDP transports.
 *
 * Everything runs under engine->lock.  Rule that keeps this re-entrant: the send path (called from
 * inside transactions) never frees a connection or fails a transaction; a connection that breaks while
 * sending is taken out of the reuse table and shut down, and the epoll handler closes it later. */
#include "engine_int.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net/tls.h"

#define CONN_READ_CHUNK 16384
#define CONN_BATCH_BYTES 65536

const struct txn_cfg *engine_txn_cfg(struct engine *e, const struct transport *tp)
{
    return tp && tp->kind != TP_UDP ? &e->tcfg_reliable : &e->tcfg;
}

const char *engine_tp_name(const struct transport *tp)
{
    switch (tp->kind) {
    case TP_TCP: return "TCP";
    case TP_TLS: return "TLS";
    default: return "UDP";
    }
}

/* "Connection refused (ECONNREFUSED)" */
static void errno_text(int en, char *buf, size_t len)
{
    const char *name = strerrorname_np(en);
    snprintf(buf, len, "%s (%s)", strerror(en), name ? name : "?");
}

static void peer_text(const struct netaddr *a, char *buf, size_t len)
{
    char h[64];
    uint16_t port = 0;
    netaddr_format(a, h, sizeof(h), &port);
    snprintf(buf, len, netaddr_is_ipv6(a) ? "[%s]:%u" : "%s:%u", h, port);
}

static size_t peer_key(uint32_t tid, const struct netaddr *a, unsigned char *k)
{
    size_t n = 4;
    strmap_idkey(tid, k);
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        k[n++] = 6;
        memcpy(k + n, &s6->sin6_port, 2);
        n += 2;
        memcpy(k + n, &s6->sin6_addr, 16);
        n += 16;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        k[n++] = 4;
        memcpy(k + n, &s4->sin_port, 2);
        n += 2;
        memcpy(k + n, &s4->sin_addr, 4);
        n += 4;
    }
    return n;
}

struct conn *engine_conn_get(struct engine *e, uint32_t id)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    return strmap_get(&e->conns, k, 4);
}

static void push_error(struct engine *e, enum engine_event_kind kind, uint32_t tid, const struct netaddr *peer,
                       const char *info)
{
    struct engine_event *ev = engine_event_new(kind);
    if (ev == NULL)
        return;
    ev->transport_id = tid;
    engine_event_set_src(ev, peer);
    engine_set_err(ev->info, sizeof(ev->info), "%s", info);
    engine_push_event(e, ev);
}

static void conn_destroy(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    stream_free(&c->s);
    free(c);
}

static void conn_unindex(struct engine *e, struct conn *c)
{
    if (c->klen && strmap_get(&e->conn_by_peer, c->key, c->klen) == c)
        strmap_del(&e->conn_by_peer, c->key, c->klen);
    c->klen = 0;
    if (c->alias_klen && strmap_get(&e->conn_by_peer, c->alias_key, c->alias_klen) == c)
        strmap_del(&e->conn_by_peer, c->alias_key, c->alias_klen);
    c->alias_klen = 0;
}

static void conn_close(struct engine *e, struct conn *c)
{
    unsigned char k[4];
    strmap_idkey(c->id, k);
    strmap_del(&e->conns, k, 4);
    if (!c->outgoing) {
        struct transport *tp = engine_transport(e, c->transport_id);
        if (tp && tp->n_accepted > 0 && --tp->n_accepted < tp->max_conns)
            tp->conn_limit_full = 0;
    }
    conn_unindex(e, c);
    (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    conn_destroy(c);
}

/* A connection failed (connect, handshake, reset): its transactions end with info, then it closes. */
static void conn_fail(struct engine *e, struct conn *c, const char *info)
{
    uint32_t tid = c->transport_id;
    struct netaddr peer = c->peer;
    conn_close(e, c);
    if (engine_fail_txns_to(e, tid, &peer, info) == 0)
        push_error(e, ENGINE_EV_TRANSPORT_ERROR, tid, &peer, info);
}

static int conn_want_write(const struct conn *c, int ssl_wants_write)
{
    if (c->connecting || ssl_wants_write)
        return 1;
    return !c->handshaking && stream_tx_pending(&c->s) > 0;
}

static void conn_set_mask(struct engine *e, struct conn *c, int ssl_wants_write)
{
    uint32_t want = EPOLLIN | (conn_want_write(c, ssl_wants_write) ? EPOLLOUT : 0);
    if (want == c->ev_mask)
        return;
    struct epoll_event ev = {.events = want, .data.u32 = c->id};
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->ev_mask = want;
}

static void schedule_idle(struct engine *e, struct conn *c, uint64_t deadline)
{
    c->gen++;
    if (deadline == UINT64_MAX)
        return;
    struct timer_entry te = {.deadline = deadline, .kind = TK_CONN, .id = c->id, .gen = c->gen};
    (void)timerheap_push(&e->timers, te);
}

static struct conn *conn_new(struct engine *e, struct transport *tp, int fd, const struct netaddr *peer, int outgoing)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->transport_id = tp->id;
    c->peer = *peer;
    c->outgoing = outgoing;
    stream_init(&c->s, 0, tp->max_queue, tp->idle_ms == UINT32_MAX ? 0 : tp->idle_ms, engine_now_ms());
    c->id = engine_new_id(e);
    unsigned char k[4];
    strmap_idkey(c->id, k);
    c->klen = peer_key(tp->id, peer, c->key);
    c->ev_mask = EPOLLIN;
    struct epoll_event ev = {.events = c->ev_mask, .data.u32 = c->id};
    if (strmap_put(&e->conns, k, 4, c) < 0) {
        c->fd = -1;
        conn_destroy(c);
        return NULL;
    }
    if (strmap_put(&e->conn_by_peer, c->key, c->klen, c) < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        strmap_del(&e->conns, k, 4);
        conn_unindex(e, c);
        c->fd = -1;
        conn_destroy(c);
        return NULL;
    }
    schedule_idle(e, c, stream_idle_deadline(&c->s));
    return c;
}

/* Write what the queue holds.  0 (all written or the socket is full) or -errno; *ssl_ww set when TLS
 * needs the socket writable to go on. */
static int conn_flush(struct conn *c, int *ssl_ww, char *why, size_t whylen)
{
    *ssl_ww = 0;
    if (c->connecting || c->handshaking)
        return 0;
    for (;;) {
        size_t n;
        const char *p = stream_tx_peek(&c->s, &n);
        if (n == 0)
            return 0;
        if (c->ssl) {
            ERR_clear_error();
            int w = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
            if (w > 0) {
                stream_tx_consume(&c->s, (size_t)w, engine_now_ms());
                continue;
            }
            int se = SSL_get_error(c->ssl, w);
            if (se == SSL_ERROR_WANT_WRITE) {
                *ssl_ww = 1;
                return 0;
            }
            if (se == SSL_ERROR_WANT_READ)
                return 0;
            tls_reason(c->ssl, why, whylen);
            return -EPIPE;
        }
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            stream_tx_consume(&c->s, (size_t)w, engine_now_ms());
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        int en = w < 0 ? errno : EPIPE;
        errno_text(en, why, whylen);
        return -en;
    }
}

/* Send path: a connection that broke leaves the reuse table and is shut down; the epoll handler sees
 * the hang-up and closes it. */
static void conn_break(struct engine *e, struct conn *c)
{
    conn_unindex(e, c);
    (void)shutdown(c->fd, SHUT_RDWR);
    conn_set_mask(e, c, 0);
}

static int tls_setup(struct transport *tp, struct conn *c, int client)
{
    c->ssl = SSL_new(tp->ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return -ENOMEM;
    c->handshaking = 1;
    if (!client) {
        SSL_set_accept_state(c->ssl);
        return 0;
    }
    SSL_set_connect_state(c->ssl);
    SSL_set_verify(c->ssl, tp->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (tp->server_name[0]) {
        (void)SSL_set_tlsext_host_name(c->ssl, tp->server_name);
        if (tp->verify && SSL_set1_host(c->ssl, tp->server_name) != 1)
            return -ENOMEM;
    } else if (tp->verify) {
        char h[64];
        netaddr_format(&c->peer, h, sizeof(h), NULL);
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), h) != 1)
            return -EINVAL;
    }
    return 0;
}

static struct conn *conn_open(struct engine *e, struct transport *tp, const struct netaddr *to, int *rc)
{
    int fd = socket(to->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *rc = -errno;
        return NULL;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct netaddr local = tp->local;
    if (local.ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&local.ss)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&local.ss)->sin_port = 0;
    if (bind(fd, (struct sockaddr *)&local.ss, local.len) < 0) {
        *rc = -errno;
        close(fd);
        return NULL;
    }
    int connecting = 0;
    if (connect(fd, (const struct sockaddr *)&to->ss, to->len) < 0) {
        if (errno != EINPROGRESS) {
            *rc = -errno;
            close(fd);
            return NULL;
        }
        connecting = 1;
    }
    struct conn *c = conn_new(e, tp, fd, to, 1);
    if (c == NULL) {
        close(fd);
        *rc = -ENOMEM;
        return NULL;
    }
    c->connecting = connecting;
    if (tp->kind == TP_TLS && tls_setup(tp, c, 1) < 0) {
        conn_close(e, c);
        *rc = -ENOMEM;
        return NULL;
    }
    conn_set_mask(e, c, 0);
    *rc = 0;
    return c;
}

int engine_conn_send(struct engine *e, struct transport *tp, const struct netaddr *to, const char *data, size_t len)
{
    unsigned char k[4 + sizeof(struct sockaddr_storage)];
    size_t kl = peer_key(tp->id, to, k);
    struct conn *c = strmap_get(&e->conn_by_peer, k, kl);
    int rc = 0;
    if (c == NULL && (c = conn_open(e, tp, to, &rc)) == NULL)
        return rc;
    rc = stream_tx_queue(&c->s, data, len, engine_now_ms());
    if (rc < 0)
        return rc;
    /* inside a loop iteration: written at its end, several messages in one write (at once when 64 KiB wait:
     * one iteration may read a great many requests from a fast peer, and the queue is bounded) */
    if (e->tx_batching && stream_tx_pending(&c->s) < CONN_BATCH_BYTES &&
        (c->tx_listed || engine_tx_mark(e, c->id, 1) == 0)) {
        c->tx_listed = 1;
        return 0;
    }
    int ww = 0;
    char why[160];
    rc = conn_flush(c, &ww, why, sizeof(why));
    if (rc < 0) {
        conn_break(e, c);
        return rc;
    }
    conn_set_mask(e, c, ww);
    return 0;
}

void engine_conn_flush_pending(struct engine *e, uint32_t conn_id)
{
    struct conn *c = engine_conn_get(e, conn_id);
    if (c == NULL || !c->tx_listed)
        return;
    c->tx_listed = 0;
    int ww = 0;
    char why[160];
    if (conn_flush(c, &ww, why, sizeof(why)) < 0) {
        conn_break(e, c); /* the epoll handler sees the hang-up and reports it */
        return;
    }
    conn_set_mask(e, c, ww);
}

void engine_conn_alias(struct engine *e, struct transport *tp, const struct netaddr *src, const struct sip_via *via)
{
    struct sip_str val;
    struct conn *c = e->rx_conn ? engine_conn_get(e, e->rx_conn) : NULL;
    if (c == NULL || c->outgoing || c->alias_klen || sip_param_find(via->params, "alias", &val) != 0)
        return;
    /* TLS: only a peer whose certificate we verified may name another address for itself (RFC 5923 5) */
    if (c->ssl && !(SSL_get0_peer_certificate(c->ssl) && SSL_get_verify_result(c->ssl) == X509_V_OK))
        return;
    char host[64];
    if (via->host.len == 0 || via->host.len >= sizeof(host))
        return;
    memcpy(host, via->host.p, via->host.len);
    host[via->host.len] = '\0';
    struct netaddr a;
    uint16_t port = via->port > 0 ? (uint16_t)via->port : (tp->kind == TP_TLS ? 5061 : 5060);
    if (netaddr_set(&a, host, port) < 0 || netaddr_eq(&a, src) || a.ss.ss_family != src->ss.ss_family)
        return;
    unsigned char k[4 + sizeof(struct sockaddr_storage)];
    size_t kl = peer_key(tp->id, &a, k);
    if (strmap_get(&e->conn_by_peer, k, kl) != NULL)
        return; /* a connection to that address exists already: keep using it */
    if (strmap_put(&e->conn_by_peer, k, kl, c) == 0) {
        memcpy(c->alias_key, k, kl);
        c->alias_klen = kl;
    }
}

/* Framed messages out of the receive buffer; 0, or -1 when the connection was closed. */
static int conn_deliver(struct engine *e, struct conn *c)
{
    struct transport *tp = engine_transport(e, c->transport_id);
    uint32_t id = c->id;
    for (;;) {
        const char *m;
        size_t n;
        struct sip_error err;
        memset(&err, 0, sizeof(err));
        int r = stream_rx_next(&c->s, &m, &n, &err);
        if (r == STREAM_NONE)
            return 0;
        if (r == STREAM_PING) {
            int ww = 0;
            char why[160];
            if (stream_tx_queue(&c->s, "\r\n", 2, engine_now_ms()) == 0 && conn_flush(c, &ww, why, sizeof(why)) < 0) {
                conn_break(e, c);
                return 0;
            }
            conn_set_mask(e, c, ww);
            continue;
        }
        if (r < 0 || tp == NULL) {
            char info[160], p[72];
            peer_text(&c->peer, p, sizeof(p));
            engine_set_err(info, sizeof(info), "stream from %s cannot be framed (%.80s): connection closed", p,
                     tp ? err.reason : "transport gone");
            e->parse_errors++;
            push_error(e, ENGINE_EV_PARSE_ERROR, c->transport_id, &c->peer, info);
            conn_close(e, c);
            return -1;
        }
        e->rx_messages++;
        struct netaddr src = c->peer;
        uint32_t outer = e->rx_conn;
        e->rx_conn = id;
        engine_on_datagram(e, tp, m, n, &src);
        e->rx_conn = outer;
        if (engine_conn_get(e, id) != c)
            return -1;
    }
}

/* Read what the socket has; 0, or -1 when the connection was closed. */
static int conn_read(struct engine *e, struct conn *c, int *ssl_ww)
{
    char buf[CONN_READ_CHUNK];
    char p[72], info[200];
    for (;;) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof(buf));
            if (r <= 0) {
                int se = SSL_get_error(c->ssl, r);
                if (se == SSL_ERROR_WANT_READ)
                    return 0;
                if (se == SSL_ERROR_WANT_WRITE) {
                    *ssl_ww = 1;
                    return 0;
                }
                if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                    conn_close(e, c);
                    return -1;
                }
                char why[128];
                tls_reason(c->ssl, why, sizeof(why));
                peer_text(&c->peer, p, sizeof(p));
                engine_set_err(info, sizeof(info), "TLS connection with %s failed: %s", p, why);
                conn_fail(e, c, info);
                return -1;
            }
            n = r;
        } else {
            n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            if (n == 0) {
                conn_close(e, c); /* the peer closed: normal */
                return -1;
            }
            if (n < 0) {
                char why[96];
                errno_text(errno, why, sizeof(why));
                peer_text(&c->peer, p, sizeof(p));
                engine_set_err(info, sizeof(info), "TCP connection with %s failed: %s", p, why);
                conn_fail(e, c, info);
                return -1;
            }
        }
        int rc = stream_rx_append(&c->s, buf, (size_t)n, engine_now_ms());
        if (rc < 0) {
            peer_text(&c->peer, p, sizeof(p));
            engine_set_err(info, sizeof(info), "stream from %s: %s without a whole message: connection closed", p,
                     rc == -E2BIG ? "too many bytes" : "out of memory");
            e->parse_errors++;
            push_error(e, ENGINE_EV_PARSE_ERROR, c->transport_id, &c->peer, info);
            conn_close(e, c);
            return -1;
        }
        if (conn_deliver(e, c) < 0)
            return -1;
    }
}

void engine_conn_on_io(struct engine *e, struct conn *c, uint32_t events)
{
    char p[72], info[200], why[160];
    int ww = 0;
    if (c->connecting) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr == 0 && (events & (EPOLLERR | EPOLLHUP)))
            soerr = ECONNREFUSED;
        if (soerr) {
            errno_text(soerr, why, sizeof(why));
            peer_text(&c->peer, p, sizeof(p));
            engine_set_err(info, sizeof(info), "connect to %s failed: %s", p, why);
            conn_fail(e, c, info);
            return;
        }
        c->connecting = 0;
    }
    if (c->handshaking) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int se = SSL_get_error(c->ssl, r);
            if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
                conn_set_mask(e, c, se == SSL_ERROR_WANT_WRITE);
                return;
            }
            tls_reason(c->ssl, why, sizeof(why));
            peer_text(&c->peer, p, sizeof(p));
            engine_set_err(info, sizeof(info), "TLS handshake with %s failed: %s", p, why);
            conn_fail(e, c, info);
            return;
        }
        c->handshaking = 0;
        events |= EPOLLIN | EPOLLOUT; /* data may wait in OpenSSL's buffer; the queue may hold requests */
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (conn_read(e, c, &ww) < 0)
            return;
    }
    int ww2 = 0;
    if (conn_flush(c, &ww2, why, sizeof(why)) < 0) {
        peer_text(&c->peer, p, sizeof(p));
        engine_set_err(info, sizeof(info), "sending to %s failed: %s", p, why);
        conn_fail(e, c, info);
        return;
    }
    if ((events & (EPOLLHUP | EPOLLERR)) && !c->ssl) {
        conn_close(e, c);
        return;
    }
    conn_set_mask(e, c, ww || ww2);
}

/* The accepted connection of tp that was active least recently, with nothing waiting to be written. */
static struct conn *least_recent_idle(struct engine *e, const struct transport *tp)
{
    struct conn *best = NULL;
    size_t i = 0;
    long s;
    while ((s = strmap_next(&e->conns, &i)) >= 0) {
        struct conn *c = e->conns.s[s].val;
        if (c->transport_id != tp->id || c->outgoing || c->handshaking || stream_tx_pending(&c->s) > 0)
            continue;
        if (best == NULL || c->s.last_active < best->s.last_active)
            best = c;
    }
    return best;
}

/* The accepted-connection limit of tp is reached: make room by closing the least recently active idle
 * connection, else refuse the new one.  1 = the new connection may stay. */
static int conn_limit(struct engine *e, struct transport *tp, const struct netaddr *peer)
{
    struct conn *old = least_recent_idle(e, tp);
    char p[72], o[72], info[200];
    peer_text(peer, p, sizeof(p));
    e->conn_limit_hits++;
    if (old)
        peer_text(&old->peer, o, sizeof(o));
    engine_set_err(info, sizeof(info), "%s connection limit %u reached on %s port %u: %s%s", engine_tp_name(tp),
                   tp->max_conns, tp->host, tp->port, old ? "closed the least recently active connection from " :
                   "refused the connection from ", old ? o : p);
    if (old)
        conn_close(e, old);
    if (!tp->conn_limit_full) { /* one event each time the limit is reached, not one per connection */
        tp->conn_limit_full = 1;
        push_error(e, ENGINE_EV_TRANSPORT_ERROR, tp->id, peer, info);
    }
    return old != NULL;
}

void engine_tp_on_accept(struct engine *e, struct transport *tp)
{
    for (int i = 0; i < 64; i++) {
        struct netaddr peer;
        memset(&peer, 0, sizeof(peer));
        peer.len = sizeof(peer.ss);
        int fd = accept4(tp->fd, (struct sockaddr *)&peer.ss, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (tp->max_conns && tp->n_accepted >= tp->max_conns && !conn_limit(e, tp, &peer)) {
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = conn_new(e, tp, fd, &peer, 0);
        if (c == NULL) {
            close(fd);
            continue;
        }
        tp->n_accepted++;
        if (tp->kind == TP_TLS && tls_setup(tp, c, 0) < 0)
            conn_close(e, c);
    }
}

void engine_conn_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now)
{
    struct conn *c = engine_conn_get(e, te->id);
    if (c == NULL || c->gen != te->gen)
        return;
    if (stream_is_idle(&c->s, now)) {
        conn_close(e, c);
        return;
    }
    uint64_t d = stream_idle_deadline(&c->s);
    schedule_idle(e, c, d > now ? d : now + c->s.idle_ms);
}

void engine_udp_on_error(struct engine *e, struct transport *tp)
{
    for (int i = 0; i < 64; i++) {
        char data[64], ctl[512];
        struct netaddr dst;
        memset(&dst, 0, sizeof(dst));
        struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
        struct msghdr mh = {.msg_name = &dst.ss, .msg_namelen = sizeof(dst.ss), .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = ctl, .msg_controllen = sizeof(ctl)};
        ssize_t n = recvmsg(tp->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (n < 0)
            return;
        dst.len = mh.msg_namelen;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err ee;
            memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
            if (ee.ee_origin != SO_EE_ORIGIN_ICMP && ee.ee_origin != SO_EE_ORIGIN_ICMP6)
                continue;
            char p[72], why[96], info[200];
            errno_text((int)ee.ee_errno, why, sizeof(why));
            peer_text(&dst, p, sizeof(p));
            engine_set_err(info, sizeof(info), "ICMP error for %s: %s%s", p, why,
                     ee.ee_errno == ECONNREFUSED ? ", port unreachable" : "");
            if (engine_fail_txns_to(e, tp->id, &dst, info) == 0)
                push_error(e, ENGINE_EV_TRANSPORT_ERROR, tp->id, &dst, info);
        }
    }
}

void engine_transport_destroy(struct transport *tp)
{
    engine_udp_txq_free(tp);
    if (tp->fd >= 0)
        close(tp->fd);
    if (tp->ssl_ctx)
        SSL_CTX_free(tp->ssl_ctx);
    free(tp);
}

void engine_conns_free_all(struct engine *e)
{
    size_t i = 0;
    long s;
    while ((s = strmap_next(&e->conns, &i)) >= 0)
        conn_destroy(e->conns.s[s].val);
}

int engine_listen_stream(struct engine *e, enum tp_kind kind, const char *host, uint16_t port,
                         const struct engine_stream_opts *opts, uint32_t *transport_id, uint16_t *bound_port,
                         char *err, size_t errlen)
{
    struct engine_stream_opts none;
    memset(&none, 0, sizeof(none));
    if (opts == NULL)
        opts = &none;
    struct netaddr a;
    if (engine_listen_addr(host, port, &a, err, errlen) < 0)
        return -EINVAL;
    char hbuf[64];
    netaddr_format(&a, hbuf, sizeof(hbuf), NULL);
    const char *name = kind == TP_TLS ? "TLS" : "TCP";
    if (opts->server_name && strlen(opts->server_name) >= sizeof(((struct transport *)0)->server_name)) {
        engine_set_err(err, errlen, "server_name is too long");
        return -EINVAL;
    }
    SSL_CTX *ctx = NULL;
    if (kind == TP_TLS) {
        struct tls_opts to = {opts->cert_file, opts->key_file, opts->ca_file, opts->ca_dir, !opts->no_verify,
                              opts->require_client_cert};
        char why[200] = "";
        ctx = tls_ctx_new(&to, why, sizeof(why));
        if (ctx == NULL) {
            engine_set_err(err, errlen, "%s", why);
            return -EINVAL;
        }
    }
    int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int en = errno;
        engine_set_err(err, errlen, "socket: %s", strerror(en));
        SSL_CTX_free(ctx);
        return -en;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a.ss.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(fd, 1024) < 0) {
        int en = errno;
        engine_set_err(err, errlen, "cannot listen on %s %s port %u: %s", name, hbuf, port, strerror(en));
        close(fd);
        SSL_CTX_free(ctx);
        return -en;
    }
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0) {
        int en = errno;
        engine_set_err(err, errlen, "getsockname: %s", strerror(en));
        close(fd);
        SSL_CTX_free(ctx);
        return -en;
    }
    struct transport *tp = calloc(1, sizeof(*tp));
    if (tp == NULL) {
        close(fd);
        SSL_CTX_free(ctx);
        engine_set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    tp->fd = fd;
    tp->kind = kind;
    tp->local = a;
    tp->ssl_ctx = ctx;
    tp->verify = !opts->no_verify;
    tp->idle_ms = opts->idle_ms ? opts->idle_ms : STREAM_DEFAULT_IDLE_MS;
    tp->max_queue = opts->max_queue;
    tp->max_conns = opts->max_conns;
    if (opts->server_name)
        snprintf(tp->server_name, sizeof(tp->server_name), "%s", opts->server_name);
    netaddr_format(&a, tp->host, sizeof(tp->host), &tp->port);
    int rc = engine_transport_register(e, tp, err, errlen);
    if (rc < 0) {
        engine_transport_destroy(tp);
        return rc;
    }
    *transport_id = tp->id;
    *bound_port = tp->port;
    return 0;
}

int engine_listen_tcp(struct engine *e, const char *host, uint16_t port, const struct engine_stream_opts *opts,
                      uint32_t *transport_id, uint16_t *bound_port, char *err, size_t errlen)
{
    return engine_listen_stream(e, TP_TCP, host, port, opts, transport_id, bound_port, err, errlen);
}

int engine_listen_tls(struct engine *e, const char *host, uint16_t port, const struct engine_stream_opts *opts,
                      uint32_t *transport_id, uint16_t *bound_port, char *err, size_t errlen)
{
    return engine_listen_stream(e, TP_TLS, host, port, opts, transport_id, bound_port, err, errlen);
}
