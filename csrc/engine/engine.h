/* The signalling engine: transports, transactions and dialogs on one thread.
 *
 * An engine owns a signalling thread running an epoll loop over its UDP
 * transports, an eventfd for wake-ups and a timer heap.  Received messages
 * are parsed, matched to transactions (RFC 3261 17.1.3 / 17.2.3) and dialogs,
 * and handed to the user as events through a bounded queue whose eventfd
 * becomes readable when events are waiting.  Routine behaviour runs here
 * without the user: 100 Trying for INVITE, retransmissions, the ACK for a
 * 2xx (and its repetition when the 2xx is retransmitted), retransmission of
 * our 2xx until the ACK arrives, CANCEL answered with 200 and the INVITE
 * with 487, 481 for requests in unknown dialogs.
 *
 * Threads and locks: engine->lock protects every table (transports,
 * transactions, dialogs, timers).  The signalling thread takes it while it
 * handles a batch of datagrams or due timers; user commands take it for the
 * time of one command and may send on a socket themselves (sendto is
 * thread-safe).  engine->evq_lock protects the event queue only.
 *
 * Plain C11, no Python.  Ids (transport, transaction, dialog) are handles in
 * engine-owned tables; a stale id yields -ENOENT, never a crash.
 */
#ifndef PYSIPTEST_ENGINE_ENGINE_H
#define PYSIPTEST_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "sip/sipmsg.h"

struct engine_cfg {
    uint32_t t1_ms, t2_ms, t4_ms; /* 0 = RFC 3261 defaults 500/4000/5000 */
    size_t max_events;            /* event queue bound, 0 = 65536 */
    char user_agent[64];          /* User-Agent/Server value added to what we build; empty = none */
};

enum engine_event_kind {
    ENGINE_EV_REQUEST = 1,     /* a request arrived (txn_id of its server transaction; 0 for ACK) */
    ENGINE_EV_RESPONSE,        /* a response for one of our client transactions */
    ENGINE_EV_TIMEOUT,         /* a transaction timed out (info: "Timer B" ...) or a 2xx got no ACK ("no ACK") */
    ENGINE_EV_TRANSPORT_ERROR, /* sending failed (info: strerror) */
    ENGINE_EV_PARSE_ERROR,     /* a datagram that is not a SIP message (info: reason) */
    ENGINE_EV_CANCELLED,       /* the peer CANCELled our server INVITE transaction txn_id; 487 was sent */
    ENGINE_EV_DIALOG_ENDED,    /* dialog_id was removed (our BYE answered, timed out or unsendable; theirs answered) */
};

struct engine_event {
    enum engine_event_kind kind;
    uint32_t transport_id;
    uint32_t txn_id;
    uint32_t dialog_id;
    char src_host[64];
    uint16_t src_port;
    int status;          /* response status for RESPONSE */
    struct sipmsg *msg;  /* owned by the event; NULL for TIMEOUT etc. */
    char info[160];
    struct engine_event *next;
};

struct engine_hdr {
    const char *name;
    const char *value;
};

struct engine;

struct engine *engine_new(const struct engine_cfg *cfg, char *err, size_t errlen);
/* Stops the thread and frees everything (pending events too). NULL-safe. */
void engine_free(struct engine *e);

/* eventfd that is readable while events are queued. */
int engine_event_fd(const struct engine *e);
/* Block up to timeout_ms (-1 forever) until events are queued or the engine closes. 1 events, 0 timeout. */
int engine_wait(struct engine *e, int timeout_ms);
/* Make engine_wait return now in every thread waiting in it (used when closing). */
void engine_interrupt(struct engine *e);
/* Take up to max events (a linked list, oldest first); caller frees each with engine_event_free. Returns count. */
size_t engine_take(struct engine *e, size_t max, struct engine_event **head);
void engine_event_free(struct engine_event *ev);
/* Events dropped because the queue was full. */
uint64_t engine_events_dropped(struct engine *e);

/* Open a UDP transport on a numeric host (not a wildcard) and port (0 = any). */
int engine_listen_udp(struct engine *e, const char *host, uint16_t port, uint32_t *transport_id, uint16_t *bound_port,
                      char *err, size_t errlen);

/* Send a request outside a dialog.  The engine writes the request line, a top Via for the transport with a new
 * branch and rport, Max-Forwards: 70 (unless given), the given headers, Content-Length and the body.
 * The user supplies From (with tag), To, Call-ID, CSeq and Contact.  A client transaction is started for every
 * method but ACK (sent once, *txn_id = 0). */
int engine_request(struct engine *e, uint32_t transport_id, const char *dest_host, uint16_t dest_port,
                   const char *method, const char *ruri, const struct engine_hdr *hdrs, size_t nhdrs, const char *body,
                   size_t blen, uint32_t *txn_id, char *err, size_t errlen);

/* Send a request inside a dialog (BYE, re-INVITE, INFO, ...); the engine builds it from the dialog state. */
int engine_dialog_request(struct engine *e, uint32_t dialog_id, const char *method, const struct engine_hdr *hdrs,
                          size_t nhdrs, const char *body, size_t blen, uint32_t *txn_id, char *err, size_t errlen);

/* Respond on a server transaction.  The response copies Via, From, To (adding our tag), Call-ID and CSeq from
 * the request (RFC 3261 8.2.6) and Record-Route for dialog-creating responses; then the given headers.
 * A 101-299 response to INVITE creates (or confirms) a dialog whose id is stored in *dialog_id. */
int engine_respond(struct engine *e, uint32_t txn_id, int status, const char *reason, const struct engine_hdr *hdrs,
                   size_t nhdrs, const char *body, size_t blen, uint32_t *dialog_id, char *err, size_t errlen);

/* CANCEL the INVITE client transaction txn_id (RFC 3261 9.1). */
int engine_cancel(struct engine *e, uint32_t txn_id, uint32_t *cancel_txn_id, char *err, size_t errlen);

/* Send raw bytes from a transport (for tests that inject malformed messages). */
int engine_send_raw(struct engine *e, uint32_t transport_id, const char *host, uint16_t port, const char *data,
                    size_t len, char *err, size_t errlen);

struct engine_dialog_info {
    char call_id[256];
    char local_tag[128];
    char remote_tag[128];
    char remote_target[256];
    int state; /* enum dialog_state */
    int is_uac;
    uint32_t local_cseq;
};
int engine_dialog_info(struct engine *e, uint32_t dialog_id, struct engine_dialog_info *out);

struct engine_counts {
    size_t transports, transactions, dialogs, pending_events;
    uint64_t rx_messages, tx_messages, retransmissions, events_dropped, parse_errors;
};
void engine_get_counts(struct engine *e, struct engine_counts *out);

#endif
