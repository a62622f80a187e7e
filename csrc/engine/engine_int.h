/* Internal structures of the engine, shared by engine.c (thread, loop, events,
 * timers), engine_rx.c (received messages) and engine_cmd.c (user commands).
 * Everything here is protected by engine->lock unless said otherwise. */
#ifndef PYSIPTEST_ENGINE_ENGINE_INT_H
#define PYSIPTEST_ENGINE_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"
#include "net/netaddr.h"
#include "net/stream.h"
#include "net/timerheap.h"
#include "sip/dialog.h"
#include "sip/txn.h"
#include "strmap.h"

enum { TK_TXN = 1, TK_DLG = 2, TK_CONN = 3, TK_FAST = 4, TK_LOAD = 5, TK_PRACK = 6 };

enum tp_kind { TP_UDP, TP_TCP, TP_TLS };

struct transport {
    uint32_t id;
    int fd; /* UDP socket, or the listening socket of a stream transport */
    enum tp_kind kind;
    struct netaddr local;
    char host[64]; /* numeric, no brackets */
    uint16_t port;
    /* stream transports */
    uint32_t idle_ms;
    size_t max_queue;
    struct ssl_ctx_st *ssl_ctx; /* TLS: SSL_CTX, both roles */
    char server_name[256];      /* TLS client: SNI and verified name; empty = verify the peer's IP */
    int verify;
    int no_auto_prack; /* 1 = reliable provisionals received here are not PRACKed by the engine */
    uint32_t max_conns;     /* stream: bound on accepted connections (0 = none) */
    uint32_t n_accepted;    /* stream: accepted connections open now */
    int conn_limit_full;    /* stream: the limit was hit and reported, not yet cleared */
    struct udp_txq *txq;    /* UDP: datagrams queued in this loop iteration (engine.c), NULL when none yet */
    int tx_listed;          /* UDP: in engine->tx_pending */
};

/* One TCP or TLS connection of a stream transport (engine_conn.c); epoll data is its id. */
struct conn {
    uint32_t id;
    uint32_t transport_id;
    int fd;
    struct netaddr peer;
    int outgoing;      /* we opened it */
    int connecting;    /* non-blocking connect under way */
    int handshaking;   /* TLS handshake under way */
    struct ssl_st *ssl;
    struct stream s;
    uint32_t ev_mask;  /* epoll events registered */
    uint32_t gen;      /* idle timer generation */
    unsigned char key[4 + sizeof(struct sockaddr_storage)];
    size_t klen;
    int tx_listed;     /* in engine->tx_pending: bytes queued in this loop iteration, written at its end */
    /* RFC 5923: the peer's Via sent-by (host:port with ;alias) reaches it on this connection: key in
     * conn_by_peer under that address too (alias_klen 0 = none) */
    unsigned char alias_key[4 + sizeof(struct sockaddr_storage)];
    size_t alias_klen;
};

struct etxn {
    uint32_t id;
    struct txn *t;
    enum txn_kind kind;
    uint32_t transport_id;
    struct netaddr peer; /* where requests (client) or responses (server) go */
    char *key;           /* key in engine->txn_by_key (owned copy) */
    size_t klen;
    struct sipmsg *req;  /* the request: ours (client) or received (server) */
    char to_tag[32];     /* server: our To tag once a tag-bearing response went out */
    uint32_t dialog_id;  /* dialog the transaction belongs to, 0 if none */
    uint32_t gen;        /* timer generation */
    uint32_t sends;      /* request sends (client), for retransmission counts */
    struct prack_uas *rel; /* server INVITE: reliable provisionals sent (engine_prack.c), NULL if none */
};

struct edialog {
    uint32_t id;
    struct dialog *d;
    uint32_t transport_id;
    struct netaddr peer; /* last address the peer sent from (fallback next hop) */
    char *key;
    size_t klen;
    uint32_t gen;
    /* UAS: our 2xx to an INVITE, retransmitted until the ACK arrives (RFC 3261 13.3.1.4) */
    char *resp2xx;
    size_t resp2xx_len;
    uint32_t resp2xx_cseq;
    struct netaddr resp2xx_dest;
    int awaiting_ack;
    uint64_t rtx_next;
    uint32_t rtx_interval;
    uint64_t rtx_giveup;
    /* UAC: the ACK we sent for a 2xx, repeated when the 2xx is retransmitted */
    char *ack;
    size_t ack_len;
    uint32_t ack_cseq;
    struct netaddr ack_dest;
    int quiet; /* a fast-path call in summary mode owns it: no DIALOG_ENDED event */
    /* dialog usages (RFC 5057): subscriptions (SUBSCRIBE, REFER) sharing the dialog; sub_only: no INVITE
     * usage ever (created by SUBSCRIBE/REFER/NOTIFY); invite_ended: its INVITE usage was ended by a BYE.
     * The dialog goes when its last usage ends. */
    int subs;
    int sub_only;
    int invite_ended;
    /* UAC: the last reliable provisional taken (RFC 3262 4): its RSeq, 0 = none yet */
    uint32_t rel_rseq;
    uint32_t rel_cseq; /* ... and the CSeq of the INVITE it answered */
};

struct engine {
    struct engine_cfg cfg;
    struct txn_cfg tcfg;
    struct txn_cfg tcfg_reliable; /* the same for TCP/TLS: no retransmissions */
    pthread_mutex_t lock; /* protects all tables, timers, rng, counters below */
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    int epfd;
    int wakefd; /* eventfd: wakes the loop (new timers, shutdown) */

    struct strmap transports; /* id -> struct transport */
    struct strmap txns;       /* id -> struct etxn */
    struct strmap txn_by_key; /* matching key -> struct etxn */
    struct strmap dialogs;    /* id -> struct edialog */
    struct strmap dlg_by_key; /* Call-ID\0local\0remote -> struct edialog */
    struct strmap conns;      /* id -> struct conn */
    struct strmap conn_by_peer; /* transport id + peer address -> struct conn */
    struct timerheap timers;
    uint32_t next_id;
    uint64_t rng;

    uint64_t rx_messages, tx_messages, retransmissions, parse_errors;
    /* Sends from the signalling thread inside one loop iteration are batched (tx_batching set while it holds
     * the lock): UDP datagrams wait in their transport's txq and stream bytes in their connection's queue;
     * engine_tx_flush() writes them (one sendmmsg per UDP socket, one write per connection) before the lock
     * is released.  tx_pending lists what has something queued: UDP transport ids and connection ids. */
    int tx_batching;
    struct tx_pend { uint32_t id; int is_conn; } *tx_pending;
    size_t ntx_pending, captx_pending;
    int evq_kick_pending; /* an event was queued in this iteration: write evfd once at its end */
    int fast_responds_now; /* set by the fast path: the INVITE being handled gets its 180/200 in this iteration */
    uint32_t rx_conn;     /* the connection whose message engine_on_datagram is handling, 0 = none (UDP) */
    uint64_t conn_limit_hits; /* connections refused or closed by the accepted-connection limit */
    struct engine_fast *fast; /* engine_fast.c: profiles, fast calls, load generator (NULL until used) */
    struct engine_trace *trace; /* engine_trace.c: message trace ring, NULL while off */

    /* event queue: evq_lock protects the fields below only */
    pthread_mutex_t evq_lock;
    struct engine_event *evq_head, *evq_tail;
    size_t evq_len;
    uint64_t evq_dropped;
    int evfd; /* eventfd readable while the queue is not empty */
};

/* engine.c */
uint64_t engine_now_ms(void);
uint32_t engine_new_id(struct engine *e);
void engine_rand_hex(struct engine *e, char *out, size_t nhex); /* writes nhex chars + NUL */
void engine_wake(struct engine *e);
void engine_push_event(struct engine *e, struct engine_event *ev); /* takes ev */
/* Queue ev for the user without showing it to the fast path (the caller did: engine_fast_on_event). */
void engine_queue_event(struct engine *e, struct engine_event *ev); /* takes ev */
struct engine_event *engine_event_new(enum engine_event_kind kind);
void engine_event_set_src(struct engine_event *ev, const struct netaddr *a);
int engine_sendto(struct engine *e, uint32_t transport_id, const struct netaddr *to, const char *data, size_t len);
/* engine_sendto naming the transaction and dialog the bytes belong to: a batched datagram whose send fails at
 * the end of the iteration ends that peer's client transactions, or gives a TRANSPORT_ERROR with these ids. */
int engine_sendto_ctx(struct engine *e, uint32_t transport_id, const struct netaddr *to, const char *data,
                      size_t len, uint32_t txn_id, uint32_t dialog_id);
/* Note that a transport (is_conn 0) or connection (1) has bytes queued for engine_tx_flush; 0 or -ENOMEM. */
int engine_tx_mark(struct engine *e, uint32_t id, int is_conn);
void engine_udp_txq_free(struct transport *tp);
struct transport *engine_transport(struct engine *e, uint32_t id);
/* Give a listening transport (tp->fd set) an id, enter it in the table and the epoll set. 0, or a negative
 * errno with err filled; on failure tp is in neither and the caller frees it. */
int engine_transport_register(struct engine *e, struct transport *tp, char *err, size_t errlen);
/* A listen address: numeric and not a wildcard (it goes into Via and Contact). 0 or -EINVAL with err filled. */
int engine_listen_addr(const char *host, uint16_t port, struct netaddr *a, char *err, size_t errlen);
void engine_schedule_txn(struct engine *e, struct etxn *x);
void engine_schedule_dialog(struct engine *e, struct edialog *d);
void engine_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* engine_rx.c */
void engine_on_datagram(struct engine *e, struct transport *tp, const char *data, size_t len,
                        const struct netaddr *src);
void engine_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now);
/* Act on a transaction's outputs (sends, timeout events, termination, rescheduling).  May free x. */
void engine_txn_outputs(struct engine *e, struct etxn *x, const struct txn_out *out);
struct etxn *engine_txn_get(struct engine *e, uint32_t id);
struct edialog *engine_dialog_get(struct engine *e, uint32_t id);
/* Give x a new id and enter it in the id and matching-key tables; 0 or -ENOMEM (then in neither). */
int engine_txn_insert(struct engine *e, struct etxn *x);
void engine_txn_remove(struct engine *e, struct etxn *x);
/* Free a transaction / dialog record and what it owns (not in any table any more). */
void engine_etxn_destroy(struct etxn *x);
void engine_edialog_destroy(struct edialog *d);
void engine_dialog_remove(struct engine *e, struct edialog *d, int notify);
int engine_dialog_add(struct engine *e, struct dialog *d, uint32_t transport_id, const struct netaddr *peer,
                      struct edialog **out);
struct edialog *engine_dialog_find(struct engine *e, struct sip_str call_id, struct sip_str local_tag,
                                   struct sip_str remote_tag);
/* Dialog usages (engine_sub.c): a BYE finished (the dialog goes unless subscriptions remain); a subscription
 * ended (a NOTIFY with Subscription-State: terminated answered or sent; the dialog goes with its last usage). */
void engine_dialog_bye_done(struct engine *e, struct edialog *d);
void engine_dialog_sub_ended(struct engine *e, struct edialog *d);
/* 1 when m is a NOTIFY whose Subscription-State is terminated. */
int engine_notify_terminates(const struct sipmsg *m);
/* 1 when the method creates a subscription (SUBSCRIBE, REFER). */
int engine_is_sub_method(struct sip_str method);
/* 1 when the headers (a response, or our response's header list) say Refer-Sub: false (RFC 4488). */
int engine_msg_refer_sub_false(const struct sipmsg *m);
int engine_hdrs_refer_sub_false(const struct engine_hdr *hdrs, size_t nhdrs);
/* Subscriber side: a NOTIFY with an unknown To tag that answers our pending SUBSCRIBE/REFER (same Call-ID, our
 * From tag, same Event package and id) creates the dialog (RFC 6665 4.1.2.4).  NULL when none matches. */
struct edialog *engine_dialog_from_notify(struct engine *e, uint32_t transport_id, const struct sipmsg *notify,
                                          const struct netaddr *src);
/* Subscriber side: a 2xx to our SUBSCRIBE/REFER x; creates or finds the dialog; returns its id or 0. */
uint32_t engine_sub_on_2xx(struct engine *e, struct etxn *x, const struct sipmsg *resp, const struct netaddr *src);
/* Build a Via value for transport tp with a new branch into via (vlen bytes). */
void engine_make_via(struct engine *e, const struct transport *tp, char *via, size_t vlen);

/* Build a response to req into b (RFC 3261 8.2.6); to_tag NULL adds no tag; copy_rr copies Record-Route.
 * dest (where the response goes) fills in the top Via's received and rport (RFC 3581); NULL copies it as is. */
int engine_build_response(struct engine *e, const struct sipmsg *req, const struct netaddr *dest, int status,
                          const char *reason, const char *to_tag, int copy_rr, const struct engine_hdr *hdrs,
                          size_t nhdrs, const char *body, size_t blen, struct sipbuf *b);

/* engine_conn.c: stream transports */
const struct txn_cfg *engine_txn_cfg(struct engine *e, const struct transport *tp);
const char *engine_tp_name(const struct transport *tp); /* "UDP", "TCP", "TLS" */
int engine_listen_stream(struct engine *e, enum tp_kind kind, const char *host, uint16_t port,
                         const struct engine_stream_opts *opts, uint32_t *transport_id, uint16_t *bound_port,
                         char *err, size_t errlen);
/* Send on a stream transport: queue on the connection to `to`, opening one if needed.  0 or -errno;
 * never fails transactions itself (the caller may be inside one). */
int engine_conn_send(struct engine *e, struct transport *tp, const struct netaddr *to, const char *data, size_t len);
struct conn *engine_conn_get(struct engine *e, uint32_t id);
void engine_conn_on_io(struct engine *e, struct conn *c, uint32_t events);
void engine_tp_on_accept(struct engine *e, struct transport *tp);
void engine_conn_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now);
void engine_udp_on_error(struct engine *e, struct transport *tp); /* drain the ICMP error queue */
/* Write what a connection queued during the loop iteration (engine_tx_flush). */
void engine_conn_flush_pending(struct engine *e, uint32_t conn_id);
/* RFC 5923: a request with Via ;alias arrived on a stream connection from src: requests to the Via's
 * sent-by reuse that connection. */
void engine_conn_alias(struct engine *e, struct transport *tp, const struct netaddr *src, const struct sip_via *via);
void engine_conns_free_all(struct engine *e);
void engine_transport_destroy(struct transport *tp);

/* engine_rx.c: end the client transactions on transport_id whose next hop is peer, each with a
 * TRANSPORT_ERROR event carrying info; returns how many (0: the caller reports the error itself). */
size_t engine_fail_txns_to(struct engine *e, uint32_t transport_id, const struct netaddr *peer, const char *info);

/* engine_cmd.c */
void engine_free_all(struct engine *e);
/* The commands without taking engine->lock (the caller holds it), for the fast path. */
int engine_request_locked(struct engine *e, uint32_t transport_id, const struct netaddr *dst, const char *method,
                          const char *ruri, const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen,
                          uint32_t *txn_id, char *err, size_t errlen);
int engine_dialog_request_locked(struct engine *e, uint32_t dialog_id, const char *method,
                                 const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen,
                                 uint32_t *txn_id, char *err, size_t errlen);
int engine_respond_locked(struct engine *e, uint32_t txn_id, int status, const char *reason,
                          const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen,
                          uint32_t *dialog_id, char *err, size_t errlen);

/* engine_prack.c: reliable provisionals (RFC 3262), called with engine->lock held */
/* UAS: may x (a server INVITE) send a reliable provisional now?  0 and the RSeq to use, or -EPROTO / -EBUSY
 * with err filled in. */
int engine_prack_uas_next(struct engine *e, struct etxn *x, uint32_t *rseq, char *err, size_t errlen);
/* UAS: the reliable provisional resp (borrowed) with this RSeq went out: keep it for retransmission. */
int engine_prack_uas_sent(struct engine *e, struct etxn *x, uint32_t rseq, const char *resp, size_t len,
                          int sdp, uint64_t now);
/* UAS: 1 when a body with these headers is a session description (no Content-Type, or application/sdp). */
int engine_prack_body_is_sdp(const struct engine_hdr *hdrs, size_t nhdrs, size_t blen);
/* UAS: x is about to get a final response.  1 = it is a 2xx and a reliable provisional with SDP awaits its
 * PRACK: the response is copied and sent when the PRACK arrives (RFC 3262 3); 0 = send it now (a non-2xx
 * drops a held 2xx); < 0 with err filled in (a second 2xx while one is held, ENOMEM). */
int engine_prack_uas_before_final(struct etxn *x, int status, const char *reason, const struct engine_hdr *hdrs,
                                  size_t nhdrs, const char *body, size_t blen, char *err, size_t errlen);
/* UAS: x got a final response: stop retransmitting its reliable provisional. */
void engine_prack_uas_final(struct etxn *x);
/* UAS: a PRACK arrived in dialog d on server transaction px: answer it 200 (matched) or 481. */
void engine_prack_on_prack(struct engine *e, struct etxn *px, struct edialog *d);
/* UAC: a 1xx for our INVITE x in dialog d; 1 = deliver it to the user, 0 = drop it (a retransmission or out
 * of order).  Sends the PRACK unless the transport has auto-PRACK off. */
int engine_prack_uac_on_1xx(struct engine *e, struct etxn *x, struct edialog *d, const struct sipmsg *resp);
void engine_prack_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now);
void engine_prack_free(struct prack_uas *r);

/* engine_trace.c: record one message sent (outgoing 1) or received when the trace is on (engine->lock held) */
void engine_trace_record(struct engine *e, uint32_t transport_id, int outgoing, const struct netaddr *peer,
                         const char *data, size_t len);
void engine_trace_free_ring(struct engine_trace *t);

/* engine_fast.c: called with engine->lock held */
/* Look at an event before it is queued: act on it for fast calls; 1 = swallowed (the caller frees it). */
int engine_fast_on_event(struct engine *e, struct engine_event *ev);
void engine_fast_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now);
void engine_fast_free(struct engine *e); /* without the lock, after the thread stopped */

#endif
