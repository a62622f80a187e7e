/* The signalling engine: transports, transactions and dialogs on one thread.
 *
 * An engine owns a signalling thread running an epoll loop over its UDP, TCP
 * and TLS transports and their connections (engine_conn.c), an eventfd for wake-ups and a timer heap.  Received messages
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
    ENGINE_EV_CALL_SUMMARY,    /* a fast-path call ended (engine_fast.c); status: its final status; info:
                                * "<in|out> <setup_ms> <talk_ms> <Call-ID> <end reason>" */
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

/* Open a UDP transport on a numeric host (not a wildcard) and port (0 = any).  ICMP errors (port
 * unreachable) for what it sent end the client transactions to that peer with TRANSPORT_ERROR events. */
int engine_listen_udp(struct engine *e, const char *host, uint16_t port, uint32_t *transport_id, uint16_t *bound_port,
                      char *err, size_t errlen);

/* Options of a stream transport (TCP, TLS).  Strings are borrowed for the call. */
struct engine_stream_opts {
    uint32_t idle_ms;          /* close a connection idle this long; 0 = 60000; UINT32_MAX = never */
    size_t max_queue;          /* bound of one connection's write queue in bytes; 0 = 1 MiB */
    uint32_t max_conns;        /* bound on accepted connections, 0 = none.  At the bound a new connection
                                * closes the least recently active idle accepted one, or is refused when all
                                * are busy; the first time in a row a TRANSPORT_ERROR event says which */
    /* TLS only */
    const char *cert_file;     /* our certificate chain (PEM): needed to accept; a client certificate too */
    const char *key_file;      /* its key (PEM); NULL = in cert_file */
    const char *ca_file;       /* trusted CAs (PEM file), or NULL */
    const char *ca_dir;        /* trusted CAs (hashed directory), or NULL; neither: the system store */
    const char *server_name;   /* SNI and the name verified in the server's certificate for connections we
                                * open; NULL = no SNI, the certificate must name the peer's IP address */
    int no_verify;             /* 1 = do not verify the peer (lab use; the caller logs it) */
    int require_client_cert;   /* server side: fail handshakes without a valid client certificate */
};

/* Open a listening stream transport (TCP or TLS, RFC 3261 18) on a numeric host and port (0 = any).
 * A request sent on it opens a connection from it to the destination, or reuses the open one; responses
 * go back on the connection their request came on, and a request with Via ;alias (RFC 5923) makes its
 * connection the one used for requests to the Via's sent-by (TCP; TLS when the peer's certificate was
 * verified).  Messages are framed by Content-Length; a CRLFCRLF
 * ping is answered with a CRLF pong (RFC 5626); a framing error closes the connection with a
 * PARSE_ERROR event; a failed connect or TLS handshake ends the client transactions to that peer with
 * TRANSPORT_ERROR events naming the cause (strerror and errno name; OpenSSL's reason).  opts may be NULL
 * for TCP. */
int engine_listen_tcp(struct engine *e, const char *host, uint16_t port, const struct engine_stream_opts *opts,
                      uint32_t *transport_id, uint16_t *bound_port, char *err, size_t errlen);
int engine_listen_tls(struct engine *e, const char *host, uint16_t port, const struct engine_stream_opts *opts,
                      uint32_t *transport_id, uint16_t *bound_port, char *err, size_t errlen);

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

/* engine_respond with flags.  ENGINE_RESPOND_RELIABLE on a 101-199 to an INVITE sends it reliably (RFC 3262):
 * the engine adds Require: 100rel and RSeq (random start, +1 per reliable provisional of the transaction) and
 * retransmits it (T1, doubling) until the matching PRACK, which it answers 200 and reports as a REQUEST event
 * with txn_id 0; without a PRACK for 64*T1 it answers the INVITE 504 and reports a TIMEOUT ("no PRACK").
 * -EPROTO when the INVITE has no 100rel in Supported or Require, -EBUSY while an earlier reliable provisional
 * is unacknowledged (one at a time, RFC 3262 3).  A PRACK that matches nothing is answered 481.  A 2xx given
 * while a reliable provisional with a body (SDP) awaits its PRACK returns 0 at once but is held and sent after
 * the PRACK's 200 (RFC 3262 3); a non-2xx final drops it; a second 2xx meanwhile is -EPROTO. */
enum { ENGINE_RESPOND_RELIABLE = 1 };
int engine_respond_ex(struct engine *e, uint32_t txn_id, int status, const char *reason,
                      const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen, unsigned flags,
                      uint32_t *dialog_id, char *err, size_t errlen);

/* UAC side of RFC 3262 on a transport: on (the default) the engine PRACKs each reliable provisional (Require:
 * 100rel and RSeq) received there inside its early dialog (RAck, next CSeq); either way retransmitted or out of
 * order reliable provisionals are not reported.  0 or -ENOENT. */
int engine_set_auto_prack(struct engine *e, uint32_t transport_id, int on);

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
    size_t transports, transactions, dialogs, pending_events, connections;
    uint64_t rx_messages, tx_messages, retransmissions, events_dropped, parse_errors;
    uint64_t conn_limit_hits; /* connections closed or refused at a stream transport's max_conns */
};
void engine_get_counts(struct engine *e, struct engine_counts *out);

/* ---- Fast path (engine_fast.c) ---------------------------------------------------------------------
 * A per-transport behaviour table: the signalling thread runs routine calls by itself, on timers in the
 * engine's heap.  Strings and headers are copied by engine_set_profile. */
struct engine_profile {
    int32_t ring_delay_ms;   /* 180 this long after an INVITE; -1 = none */
    int32_t answer_delay_ms; /* 200 (with body, contact, hdrs) this long after an INVITE; -1 = leave to the user */
    int32_t hold_ms;         /* send BYE this long after the call is confirmed (ACK received); -1 = never */
    unsigned auto_200;       /* ENGINE_AUTO_* bits: answer these requests with 200 by ourselves */
    int summary;             /* 1 = fast calls give one CALL_SUMMARY event and no per-message events;
                              * ENGINE_SUMMARY_COUNT = not even that: only counters (engine_fast_counts) */
    const char *contact;     /* Contact header value of our 180/200; NULL or "" = <sip:fast@host:port> */
    const char *content_type; /* of body; NULL = application/sdp */
    const char *body;        /* body of the 200 (SDP answer), may be NULL */
    size_t blen;
    const struct engine_hdr *hdrs; /* extra headers of 180/200 */
    size_t nhdrs;
};
enum { ENGINE_AUTO_BYE = 1, ENGINE_AUTO_OPTIONS = 2, ENGINE_AUTO_NOTIFY = 4, ENGINE_AUTO_INFO = 8 };
enum { ENGINE_SUMMARY_COUNT = 2 };

/* Set (p) or clear (p NULL) the fast-path table of a transport.  0, -EINVAL, -ENOENT, -ENOMEM. */
int engine_set_profile(struct engine *e, uint32_t transport_id, const struct engine_profile *p, char *err,
                       size_t errlen);
/* Fast calls of a transport that ended since its first profile was set, and how many of them were answered
 * (final status 2xx); counted in every summary mode.  0, or -ENOENT when the transport has no profile. */
int engine_fast_counts(struct engine *e, uint32_t transport_id, uint64_t *ended, uint64_t *answered);

/* Load generator: calls placed by the signalling thread at a steady rate (the UAC side of the fast path),
 * counted without events.  Templates may hold "%n" (the call number, from 1); everything is copied. */
struct engine_load_cfg {
    uint32_t transport_id;
    const char *host;        /* numeric destination */
    uint16_t port;
    const char *ruri;        /* e.g. "sip:%n@127.0.0.1:5060" */
    const char *from_uri;    /* e.g. "sip:load@127.0.0.1" (the engine adds a tag) */
    const char *to_uri;      /* NULL = ruri */
    const char *contact;     /* NULL or "" = <sip:load@host:port> of the transport */
    double rate;             /* calls per second, > 0 */
    uint64_t max_calls;      /* stop after this many calls; 0 = until engine_load_stop */
    uint32_t max_concurrent; /* 0 = no limit */
    int32_t hold_ms;         /* BYE this long after the 2xx (>= 0) */
    const char *body;        /* SDP offer, may be NULL */
    size_t blen;
};
/* 0, -EINVAL (bad argument), -EBUSY (a load is running), -ENOENT (transport), -ENOMEM. */
int engine_load_start(struct engine *e, const struct engine_load_cfg *cfg, char *err, size_t errlen);
/* Stop placing new calls (calls under way finish). 0, or -ENOENT when no load was started. */
int engine_load_stop(struct engine *e);

#define ENGINE_LOAD_REASONS 16
struct engine_load_stats {
    int running;              /* still placing calls */
    uint64_t started, answered, completed, failed, active;
    uint64_t retransmissions; /* engine-wide, since the load started */
    double elapsed_s;         /* since the load started (until the last call ended once all are done) */
    struct {
        char reason[48];      /* "486 Busy Here" style: status and reason, or "Timer B", "transport error" */
        uint64_t count;
    } fail[ENGINE_LOAD_REASONS];
    size_t nfail;
    double setup_p50_ms, setup_p95_ms, setup_p99_ms, setup_max_ms; /* INVITE sent -> 2xx received */
};
/* 0, or -ENOENT when no load was started. */
int engine_load_stats(struct engine *e, struct engine_load_stats *out);

/* Message trace (opt-in, off by default; engine_trace.c): a ring of one summary per SIP message sent or
 * received on any transport, for failure reports.  Off, it costs one pointer test per message. */
struct engine_trace_entry {
    uint64_t t_us;          /* wall clock (CLOCK_REALTIME), microseconds */
    uint64_t seq;           /* order of recording */
    uint32_t transport_id;
    int outgoing;           /* 1 sent (or queued on a connection), 0 received */
    char peer_host[64];     /* where it went or came from, numeric */
    uint16_t peer_port;
    uint32_t len;           /* bytes on the wire */
    char first_line[100];   /* start line, truncated; control characters as '?' */
    char call_id[64];       /* Call-ID value, truncated */
    char cseq[32];          /* CSeq value */
};
/* capacity entries (at most 65536) replace any trace kept so far; 0 turns the trace off.  0, -EINVAL, -ENOMEM. */
int engine_trace_enable(struct engine *e, size_t capacity);
/* A copy of the entries of transport_id (0: all), oldest first, in *out (malloc'd, the caller frees) and their
 * number in *n.  0, -ENOENT (trace off) or -ENOMEM. */
int engine_trace_snapshot(struct engine *e, uint32_t transport_id, struct engine_trace_entry **out, size_t *n);

#endif
