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
#include "net/timerheap.h"
#include "sip/dialog.h"
#include "sip/txn.h"
#include "strmap.h"

enum { TK_TXN = 1, TK_DLG = 2 };

struct transport {
    uint32_t id;
    int fd;
    struct netaddr local;
    char host[64]; /* numeric, no brackets */
    uint16_t port;
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
};

struct engine {
    struct engine_cfg cfg;
    struct txn_cfg tcfg;
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
    struct timerheap timers;
    uint32_t next_id;
    uint64_t rng;

    uint64_t rx_messages, tx_messages, retransmissions, parse_errors;

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
struct engine_event *engine_event_new(enum engine_event_kind kind);
void engine_event_set_src(struct engine_event *ev, const struct netaddr *a);
int engine_sendto(struct engine *e, uint32_t transport_id, const struct netaddr *to, const char *data, size_t len);
struct transport *engine_transport(struct engine *e, uint32_t id);
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
/* Build a Via value for transport tp with a new branch into via (vlen bytes). */
void engine_make_via(struct engine *e, const struct transport *tp, char *via, size_t vlen);

/* Build a response to req into b (RFC 3261 8.2.6); to_tag NULL adds no tag; copy_rr copies Record-Route.
 * dest (where the response goes) fills in the top Via's received and rport (RFC 3581); NULL copies it as is. */
int engine_build_response(struct engine *e, const struct sipmsg *req, const struct netaddr *dest, int status,
                          const char *reason, const char *to_tag, int copy_rr, const struct engine_hdr *hdrs,
                          size_t nhdrs, const char *body, size_t blen, struct sipbuf *b);

/* engine_cmd.c */
void engine_free_all(struct engine *e);

#endif
