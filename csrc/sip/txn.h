/* RFC 3261 section 17 transactions, with RFC 6026's Accepted state.
 *
 * Sans-IO: a transaction never touches a socket or a clock.  The owner (the
 * engine's signalling thread) feeds it inputs together with the current time
 * `now` in milliseconds, and reads back what to do in a struct txn_out: send
 * the stored request, resend the stored response, send the ACK the
 * transaction built, deliver a response to the transaction user, report a
 * timeout, or destroy the transaction.  After every input the owner re-reads
 * txn_deadline() and schedules a call to txn_on_time() for it.
 *
 * Matching (branch + method + sent-by) and the tables that hold
 * transactions are the owner's job.
 *
 * Four machines:
 *   TXN_ICT   INVITE client:     Calling -A/B-> Proceeding -> Completed(D) | Accepted(M) -> Terminated
 *   TXN_NICT  non-INVITE client: Trying -E/F-> Proceeding -E/F-> Completed(K) -> Terminated
 *   TXN_IST   INVITE server:     Proceeding -> Completed(G/H) -> Confirmed(I) | Accepted(L) -> Terminated
 *   TXN_NIST  non-INVITE server: Trying -> Proceeding -> Completed(J) -> Terminated
 */
#ifndef PYSIPTEST_SIP_TXN_H
#define PYSIPTEST_SIP_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "sipmsg.h"

#define TXN_NO_DEADLINE UINT64_MAX

enum txn_kind { TXN_ICT, TXN_NICT, TXN_IST, TXN_NIST };

enum txn_state {
    TXN_CALLING,
    TXN_TRYING,
    TXN_PROCEEDING,
    TXN_COMPLETED,
    TXN_CONFIRMED,
    TXN_ACCEPTED,
    TXN_TERMINATED
};

struct txn_cfg {
    uint32_t t1_ms;  /* RTT estimate, default 500 */
    uint32_t t2_ms;  /* max retransmit interval for non-INVITE requests and INVITE responses, default 4000 */
    uint32_t t4_ms;  /* max time a message stays in the network, default 5000 */
    int reliable;    /* transport is reliable (TCP/TLS): no retransmissions, timers D/I/J/K are zero */
};
/* A zero timer is started with a deadline of `now`: the transaction enters Completed/Confirmed and
 * terminates on the owner's next txn_on_time() call.  When the ending timer (B, D, F, H-M) and a
 * retransmission timer are both due, only the ending timer fires (no send flag).  A late call fires a
 * retransmission timer once and schedules it one interval later (from its own deadline, or from `now`
 * if that has passed too).  Wrong kind or bad arguments give -EINVAL. */

/* What the owner must do after an input.  Several flags may be set at once;
 * the owner acts on them in the order they are declared here. */
struct txn_out {
    unsigned send_request : 1;  /* client: (re)send txn_request() */
    unsigned send_response : 1; /* server: (re)send txn_response() */
    unsigned send_ack : 1;      /* ICT: send txn_ack() (ACK for a non-2xx final, built by the transaction) */
    unsigned deliver : 1;       /* client: pass the response just fed in up to the transaction user */
    unsigned timeout : 1;       /* report a timeout to the transaction user; `timer` names it ('B', 'F', 'H') */
    unsigned terminated : 1;    /* the transaction has ended; the owner removes and frees it */
    char timer;                 /* the timer that fired in txn_on_time (or that timed out), else 0 */
};

struct txn;

/* Client transaction for the request bytes req/len (borrowed; the transaction keeps a copy).
 * kind is TXN_ICT or TXN_NICT.  Sets out->send_request for the first send.  NULL on ENOMEM or bad kind,
 * and for an ICT whose request does not parse or lacks what the ACK needs (Via, From, Call-ID, CSeq).
 * cfg may be NULL for the defaults. */
struct txn *txn_client_new(enum txn_kind kind, const struct txn_cfg *cfg, const char *req, size_t len, uint64_t now,
                           struct txn_out *out);

/* A response matched to this client transaction (resp borrowed).  Returns 0, or -EPROTO if a response
 * is not acceptable in this state (it is then ignored: out has no flags).  0 with no flags: absorbed
 * (a final retransmission in NICT Completed).  An ICT non-2xx final without To is -EBADMSG. */
int txn_client_on_response(struct txn *t, const struct sipmsg *resp, uint64_t now, struct txn_out *out);

/* Server transaction; the owner has already delivered the request that created it.
 * kind is TXN_IST or TXN_NIST.  NULL on ENOMEM or bad kind. */
struct txn *txn_server_new(enum txn_kind kind, const struct txn_cfg *cfg, uint64_t now);

/* A retransmission of the request that created this server transaction arrived. */
int txn_server_on_retransmit(struct txn *t, uint64_t now, struct txn_out *out);

/* IST: an ACK matching this transaction (ACK for a non-2xx final response) arrived.  In Accepted it
 * returns 0 with no flags: that ACK acknowledges the 2xx and the owner passes it to the TU (RFC 6026). */
int txn_server_on_ack(struct txn *t, uint64_t now, struct txn_out *out);

/* The transaction user sends a response with this status; resp/len borrowed, a copy is kept for
 * retransmission.  Returns -EPROTO when the transaction can no longer send a response (already final);
 * in IST Accepted the TU's 2xx retransmissions are accepted and sent (RFC 6026 8.5). */
int txn_server_respond(struct txn *t, int status, const char *resp, size_t len, uint64_t now, struct txn_out *out);

/* Time has reached txn_deadline(t): fire the due timer(s). */
int txn_on_time(struct txn *t, uint64_t now, struct txn_out *out);

/* Earliest time at which txn_on_time must be called, or TXN_NO_DEADLINE. */
uint64_t txn_deadline(const struct txn *t);

enum txn_kind txn_kind(const struct txn *t);
enum txn_state txn_state(const struct txn *t);
int txn_last_status(const struct txn *t); /* last response sent (server) or received (client), 0 if none */
const char *txn_state_name(enum txn_state s);

/* Stored messages, borrowed views valid until the next input (len 0 when none: a client keeps no
 * response, a server no request, only an ICT that got a non-2xx final has an ACK). */
struct sip_str txn_request(const struct txn *t);
struct sip_str txn_response(const struct txn *t);
struct sip_str txn_ack(const struct txn *t);

void txn_free(struct txn *t);

#endif
