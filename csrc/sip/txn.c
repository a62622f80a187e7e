/* RFC 3261 section 17 transaction state machines, with RFC 6026's Accepted
 * state for INVITE transactions.  Sans-IO: see txn.h for the contract.
 *
 * Timers.  In every state a transaction runs at most two timers, so it keeps
 * two slots instead of one field per letter:
 *   rtx  the retransmission timer (A, E or G): its interval doubles, capped
 *        at T2 for E and G, never capped for A (Timer B ends it anyway);
 *   end  the timer that ends the transaction (B, D, F, H, I, J, K, L, M).
 * txn_deadline() is the earlier of the two.  txn_on_time() fires what is due:
 * when the end timer is due the transaction terminates (a retransmission due
 * at the same moment is dropped: nobody would be listening for it); otherwise
 * a due retransmission timer fires once and is rescheduled one interval after
 * its own deadline, or one interval after `now` when the owner was so late
 * that the next deadline has already passed (no bursts of catch-up sends).
 *
 * Reliable transports: timers A, E and G are never started, and timers D, I,
 * J and K are started with zero duration, i.e. with a deadline of `now`: the
 * transaction enters Completed/Confirmed as the RFC says and terminates on
 * the owner's next txn_on_time() call (its deadline is already due).
 *
 * Memory: one allocation for struct txn, plus one buffer per stored message
 * (the client's request, the server's last response, the ICT's ACK and, until
 * that ACK is built, the ACK's template).
 */
#include "txn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TXN_DEFAULT_T1 500u
#define TXN_DEFAULT_T2 4000u
#define TXN_DEFAULT_T4 5000u
#define TXN_TIMER_D_MS 32000u /* RFC 3261 17.1.1.2: "at least 32 seconds" on unreliable transports */

struct txn_timer {
    char name;     /* 'A'..'M'; 0 when stopped */
    uint64_t due;  /* absolute ms; TXN_NO_DEADLINE when stopped */
    uint64_t ival; /* current interval (retransmission timer only) */
};

/* An owned byte buffer; cap is the size of the allocation. */
struct txn_buf {
    char *p;
    size_t len;
    size_t cap;
};

struct txn {
    enum txn_kind kind;
    enum txn_state state;
    uint64_t t1, t2, t4;
    int reliable;
    int last_status;
    struct txn_timer rtx;  /* A, E or G */
    struct txn_timer end;  /* B, D, F, H, I, J, K, L or M */
    struct txn_buf req;    /* client: the request */
    struct txn_buf resp;   /* server: the last response sent */
    struct txn_buf ack;    /* ICT: the ACK for a non-2xx final */
    struct txn_buf ack_tmpl; /* ICT: the ACK without its To line, split at ack_split */
    size_t ack_split;
};

/* ---- small helpers ---- */

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void timer_start(struct txn_timer *tm, char name, uint64_t now, uint64_t after)
{
    tm->name = name;
    tm->ival = after;
    tm->due = add_sat(now, after);
}

static void timer_stop(struct txn_timer *tm)
{
    tm->name = 0;
    tm->ival = 0;
    tm->due = TXN_NO_DEADLINE;
}

static int timer_due(const struct txn_timer *tm, uint64_t now)
{
    return tm->name != 0 && tm->due <= now;
}

/* Copy len bytes into b, reusing its allocation when it is large enough.
 * On -ENOMEM b is unchanged. */
static int buf_set(struct txn_buf *b, const char *p, size_t len)
{
    if (len > b->cap) {
        char *n = malloc(len);
        if (!n)
            return -ENOMEM;
        free(b->p);
        b->p = n;
        b->cap = len;
    }
    if (len)
        memcpy(b->p, p, len);
    b->len = len;
    return 0;
}

static void buf_free(struct txn_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* b may be NULL (no transaction): an empty view. */
static struct sip_str buf_view(const struct txn_buf *b)
{
    struct sip_str s = {NULL, 0};
    if (b && b->len) {
        s.p = b->p;
        s.len = b->len;
    }
    return s;
}

static void out_clear(struct txn_out *out)
{
    memset(out, 0, sizeof(*out));
}

static void enter_terminated(struct txn *t, struct txn_out *out)
{
    t->state = TXN_TERMINATED;
    timer_stop(&t->rtx);
    timer_stop(&t->end);
    out->terminated = 1;
}

static int is_client(const struct txn *t)
{
    return t->kind == TXN_ICT || t->kind == TXN_NICT;
}

static int is_server(const struct txn *t)
{
    return t->kind == TXN_IST || t->kind == TXN_NIST;
}

static struct txn *txn_alloc(enum txn_kind kind, const struct txn_cfg *cfg)
{
    struct txn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->kind = kind;
    t->t1 = cfg && cfg->t1_ms ? cfg->t1_ms : TXN_DEFAULT_T1;
    t->t2 = cfg && cfg->t2_ms ? cfg->t2_ms : TXN_DEFAULT_T2;
    t->t4 = cfg && cfg->t4_ms ? cfg->t4_ms : TXN_DEFAULT_T4;
    t->reliable = cfg ? cfg->reliable != 0 : 0;
    timer_stop(&t->rtx);
    timer_stop(&t->end);
    return t;
}

/* ---- the ACK for a non-2xx final response (RFC 3261 17.1.1.3) ---- */

/* Build everything of the ACK except its To line from the INVITE: Request-URI,
 * the top Via element, Route headers, Max-Forwards, From, Call-ID, CSeq.
 * Done once when the ICT starts, so that a final response later can only fail
 * for lack of memory.  Returns 0, -ENOMEM, or -EBADMSG when the request lacks
 * what an ACK needs. */
static int ict_make_ack_template(struct txn *t)
{
    struct sipmsg *m = NULL;
    struct sipbuf b;
    const struct sip_hdr *via, *from, *callid, *cseqh, *route;
    struct sip_str rest, top_via;
    struct sip_cseq cseq;
    size_t pos;
    int rc = sipmsg_parse(t->req.p, t->req.len, &(struct sipmsg_limits){.flags = SIPMSG_SYNTAX_ONLY}, &m, NULL);
    if (rc < 0)
        return rc;
    sipbuf_init(&b);
    rc = -EBADMSG;
    if (!m->is_request || m->uri.len == 0)
        goto out;
    pos = 0;
    via = sipmsg_find(m, SIP_HDR_VIA, NULL, &pos);
    pos = 0;
    from = sipmsg_find(m, SIP_HDR_FROM, NULL, &pos);
    pos = 0;
    callid = sipmsg_find(m, SIP_HDR_CALL_ID, NULL, &pos);
    pos = 0;
    cseqh = sipmsg_find(m, SIP_HDR_CSEQ, NULL, &pos);
    if (!via || !from || !callid || !cseqh)
        goto out;
    rest = via->value;
    if (sip_list_next(&rest, &top_via) != 0 || top_via.len == 0)
        goto out;
    if (sip_cseq_parse(cseqh->value, &cseq, NULL) != 0)
        goto out;

    sipbuf_addc(&b, "ACK ");
    sipbuf_adds(&b, m->uri);
    sipbuf_addc(&b, " SIP/2.0\r\nVia: ");
    sipbuf_adds(&b, top_via);
    sipbuf_addc(&b, "\r\n");
    pos = 0;
    while ((route = sipmsg_find(m, SIP_HDR_ROUTE, NULL, &pos)) != NULL) {
        sipbuf_addc(&b, "Route: ");
        sipbuf_adds(&b, route->value);
        sipbuf_addc(&b, "\r\n");
    }
    sipbuf_addc(&b, "Max-Forwards: 70\r\nFrom: ");
    sipbuf_adds(&b, from->value);
    sipbuf_addc(&b, "\r\n");
    t->ack_split = b.len; /* the To line goes here */
    sipbuf_addc(&b, "Call-ID: ");
    sipbuf_adds(&b, callid->value);
    sipbuf_addf(&b, "\r\nCSeq: %" PRIu32 " ACK\r\nContent-Length: 0\r\n\r\n", cseq.num);
    if (b.err) {
        rc = b.err;
        goto out;
    }
    if (t->ack_split > b.len) {
        rc = -EBADMSG; /* cannot happen unless sipbuf misbehaves; keeps the split in range */
        goto out;
    }
    rc = buf_set(&t->ack_tmpl, b.p, b.len);
out:
    sipbuf_free(&b);
    sipmsg_free(m);
    return rc;
}

/* The ACK = template head + "To: " + the response's To value + template tail.
 * Returns 0, -ENOMEM, or -EBADMSG when the response has no To. */
static int ict_build_ack(struct txn *t, const struct sipmsg *resp)
{
    static const char to_name[] = "To: ";
    const size_t to_name_len = sizeof(to_name) - 1;
    size_t pos = 0, head, tail, total;
    const struct sip_hdr *to = sipmsg_find(resp, SIP_HDR_TO, NULL, &pos);
    char *p;
    if (!to)
        return -EBADMSG;
    if (!t->ack_tmpl.p || t->ack_split > t->ack_tmpl.len)
        return -EPROTO;
    head = t->ack_split;
    tail = t->ack_tmpl.len - head;
    if (to->value.len > SIZE_MAX - t->ack_tmpl.len - to_name_len - 2)
        return -E2BIG;
    total = t->ack_tmpl.len + to_name_len + to->value.len + 2;
    p = malloc(total);
    if (!p)
        return -ENOMEM;
    memcpy(p, t->ack_tmpl.p, head);
    memcpy(p + head, to_name, to_name_len);
    if (to->value.len)
        memcpy(p + head + to_name_len, to->value.p, to->value.len);
    memcpy(p + head + to_name_len + to->value.len, "\r\n", 2);
    memcpy(p + head + to_name_len + to->value.len + 2, t->ack_tmpl.p + head, tail);
    buf_free(&t->ack);
    t->ack.p = p;
    t->ack.len = t->ack.cap = total;
    buf_free(&t->ack_tmpl); /* one ACK per transaction: the template is spent */
    return 0;
}

/* ---- client transactions ---- */

struct txn *txn_client_new(enum txn_kind kind, const struct txn_cfg *cfg, const char *req, size_t len, uint64_t now,
                           struct txn_out *out)
{
    struct txn *t;
    if (out)
        out_clear(out);
    if ((kind != TXN_ICT && kind != TXN_NICT) || !req || len == 0 || !out)
        return NULL;
    t = txn_alloc(kind, cfg);
    if (!t)
        return NULL;
    if (buf_set(&t->req, req, len) != 0 || (kind == TXN_ICT && ict_make_ack_template(t) != 0)) {
        txn_free(t);
        return NULL;
    }
    if (kind == TXN_ICT) {
        t->state = TXN_CALLING;
        if (!t->reliable)
            timer_start(&t->rtx, 'A', now, t->t1);
        timer_start(&t->end, 'B', now, 64 * t->t1);
    } else {
        t->state = TXN_TRYING;
        if (!t->reliable)
            timer_start(&t->rtx, 'E', now, t->t1);
        timer_start(&t->end, 'F', now, 64 * t->t1);
    }
    out->send_request = 1;
    return t;
}

static int ict_on_response(struct txn *t, const struct sipmsg *resp, int sc, uint64_t now, struct txn_out *out)
{
    int rc;
    switch (t->state) {
    case TXN_CALLING:
    case TXN_PROCEEDING:
        if (sc < 200) {
            /* 17.1.1.2: no more retransmissions; Timer B only matters in Calling */
            t->state = TXN_PROCEEDING;
            timer_stop(&t->rtx);
            timer_stop(&t->end);
        } else if (sc < 300) {
            t->state = TXN_ACCEPTED; /* RFC 6026 */
            timer_stop(&t->rtx);
            timer_start(&t->end, 'M', now, 64 * t->t1);
        } else {
            rc = ict_build_ack(t, resp);
            if (rc < 0)
                return rc;
            t->state = TXN_COMPLETED;
            timer_stop(&t->rtx);
            timer_start(&t->end, 'D', now, t->reliable ? 0 : TXN_TIMER_D_MS);
            out->send_ack = 1;
        }
        out->deliver = 1;
        return 0;
    case TXN_COMPLETED:
        if (sc < 300)
            return -EPROTO;
        out->send_ack = 1; /* a retransmitted final: ACK again, the TU has it already */
        return 0;
    case TXN_ACCEPTED:
        if (sc < 200 || sc >= 300)
            return -EPROTO;
        out->deliver = 1; /* 2xx retransmissions (or other forks): the TU ACKs them */
        return 0;
    default:
        return -EPROTO;
    }
}

static int nict_on_response(struct txn *t, int sc, uint64_t now, struct txn_out *out)
{
    switch (t->state) {
    case TXN_TRYING:
    case TXN_PROCEEDING:
        if (sc < 200) {
            t->state = TXN_PROCEEDING; /* Timer E keeps its deadline; from now on it resets to T2 */
        } else {
            t->state = TXN_COMPLETED;
            timer_stop(&t->rtx);
            timer_start(&t->end, 'K', now, t->reliable ? 0 : t->t4);
        }
        out->deliver = 1;
        return 0;
    case TXN_COMPLETED:
        if (sc < 200)
            return -EPROTO;
        return 0; /* retransmitted final: absorbed */
    default:
        return -EPROTO;
    }
}

int txn_client_on_response(struct txn *t, const struct sipmsg *resp, uint64_t now, struct txn_out *out)
{
    int rc, sc;
    if (!out)
        return -EINVAL;
    out_clear(out);
    if (!t || !resp || !is_client(t) || resp->is_request || resp->status < 100 || resp->status > 699)
        return -EINVAL;
    sc = resp->status;
    if (t->kind == TXN_ICT)
        rc = ict_on_response(t, resp, sc, now, out);
    else
        rc = nict_on_response(t, sc, now, out);
    if (rc < 0) {
        out_clear(out);
        return rc;
    }
    t->last_status = sc;
    return 0;
}

/* ---- server transactions ---- */

struct txn *txn_server_new(enum txn_kind kind, const struct txn_cfg *cfg, uint64_t now)
{
    struct txn *t;
    (void)now; /* no timer runs before the first response */
    if (kind != TXN_IST && kind != TXN_NIST)
        return NULL;
    t = txn_alloc(kind, cfg);
    if (!t)
        return NULL;
    t->state = kind == TXN_IST ? TXN_PROCEEDING : TXN_TRYING;
    return t;
}

int txn_server_on_retransmit(struct txn *t, uint64_t now, struct txn_out *out)
{
    (void)now;
    if (!out)
        return -EINVAL;
    out_clear(out);
    if (!t || !is_server(t))
        return -EINVAL;
    switch (t->state) {
    case TXN_TRYING: /* NIST: nothing to resend yet */
        return 0;
    case TXN_PROCEEDING:
    case TXN_COMPLETED:
        if (t->resp.len) /* IST in Proceeding before the TU's 100 Trying: nothing to resend */
            out->send_response = 1;
        return 0;
    case TXN_CONFIRMED: /* IST: absorbed (17.2.1) */
    case TXN_ACCEPTED:  /* IST: absorbed, the TU retransmits its 2xx (RFC 6026) */
        return 0;
    default:
        return -EPROTO;
    }
}

int txn_server_on_ack(struct txn *t, uint64_t now, struct txn_out *out)
{
    if (!out)
        return -EINVAL;
    out_clear(out);
    if (!t || t->kind != TXN_IST)
        return -EINVAL;
    switch (t->state) {
    case TXN_COMPLETED:
        t->state = TXN_CONFIRMED;
        timer_stop(&t->rtx);
        timer_start(&t->end, 'I', now, t->reliable ? 0 : t->t4);
        return 0;
    case TXN_CONFIRMED: /* ACK retransmission: absorbed */
        return 0;
    case TXN_ACCEPTED:
        /* RFC 6026: an ACK here acknowledges the 2xx and belongs to the TU (the
         * dialog); the transaction takes no action and the owner passes it on. */
        return 0;
    default:
        return -EPROTO;
    }
}

static int ist_respond(struct txn *t, int status, uint64_t now)
{
    switch (t->state) {
    case TXN_PROCEEDING:
        if (status >= 300) {
            t->state = TXN_COMPLETED;
            if (!t->reliable)
                timer_start(&t->rtx, 'G', now, t->t1);
            timer_start(&t->end, 'H', now, 64 * t->t1);
        } else if (status >= 200) {
            t->state = TXN_ACCEPTED; /* RFC 6026 */
            timer_start(&t->end, 'L', now, 64 * t->t1);
        }
        return 0;
    case TXN_ACCEPTED:
        /* RFC 6026 8.5: the TU's 2xx retransmissions pass through the transaction */
        return status >= 200 && status < 300 ? 0 : -EPROTO;
    default:
        return -EPROTO;
    }
}

static int nist_respond(struct txn *t, int status, uint64_t now)
{
    switch (t->state) {
    case TXN_TRYING:
    case TXN_PROCEEDING:
        if (status < 200) {
            t->state = TXN_PROCEEDING;
        } else {
            t->state = TXN_COMPLETED;
            timer_start(&t->end, 'J', now, t->reliable ? 0 : 64 * t->t1);
        }
        return 0;
    default:
        return -EPROTO;
    }
}

/* Whether the server transaction may send a response with this status now. */
static int server_may_respond(const struct txn *t, int status)
{
    switch (t->state) {
    case TXN_TRYING:
    case TXN_PROCEEDING:
        return 1;
    case TXN_ACCEPTED:
        return status >= 200 && status < 300;
    default:
        return 0;
    }
}

int txn_server_respond(struct txn *t, int status, const char *resp, size_t len, uint64_t now, struct txn_out *out)
{
    int rc;
    if (!out)
        return -EINVAL;
    out_clear(out);
    if (!t || !is_server(t) || !resp || len == 0 || status < 100 || status > 699)
        return -EINVAL;
    if (!server_may_respond(t, status))
        return -EPROTO;
    rc = buf_set(&t->resp, resp, len); /* before any state change: -ENOMEM leaves t as it was */
    if (rc < 0)
        return rc;
    rc = t->kind == TXN_IST ? ist_respond(t, status, now) : nist_respond(t, status, now);
    if (rc < 0)
        return rc; /* unreachable: server_may_respond said yes */
    t->last_status = status;
    out->send_response = 1;
    return 0;
}

/* ---- time ---- */

static void fire_rtx(struct txn *t, uint64_t now, struct txn_out *out)
{
    uint64_t ival = t->rtx.ival, next;
    switch (t->rtx.name) {
    case 'A': /* 17.1.1.2: doubles without a cap; Timer B ends it */
        out->send_request = 1;
        ival = add_sat(ival, ival);
        break;
    case 'E': /* 17.1.2.2: doubles up to T2 in Trying, T2 in Proceeding */
        out->send_request = 1;
        ival = t->state == TXN_PROCEEDING ? t->t2 : min_u64(add_sat(ival, ival), t->t2);
        break;
    case 'G': /* 17.2.1: doubles up to T2 */
        out->send_response = 1;
        ival = min_u64(add_sat(ival, ival), t->t2);
        break;
    default:
        timer_stop(&t->rtx);
        return;
    }
    out->timer = t->rtx.name;
    next = add_sat(t->rtx.due, ival);
    if (next <= now)
        next = add_sat(now, ival);
    t->rtx.due = next;
    t->rtx.ival = ival;
}

int txn_on_time(struct txn *t, uint64_t now, struct txn_out *out)
{
    if (!out)
        return -EINVAL;
    out_clear(out);
    if (!t)
        return -EINVAL;
    if (t->state == TXN_TERMINATED)
        return -EPROTO;
    if (timer_due(&t->end, now)) {
        char name = t->end.name;
        out->timer = name;
        if (name == 'B' || name == 'F' || name == 'H')
            out->timeout = 1;
        enter_terminated(t, out);
        return 0;
    }
    if (timer_due(&t->rtx, now))
        fire_rtx(t, now, out);
    return 0;
}

uint64_t txn_deadline(const struct txn *t)
{
    if (!t || t->state == TXN_TERMINATED)
        return TXN_NO_DEADLINE;
    return min_u64(t->rtx.due, t->end.due);
}

/* ---- accessors ---- */

enum txn_kind txn_kind(const struct txn *t)
{
    return t->kind;
}

enum txn_state txn_state(const struct txn *t)
{
    return t->state;
}

int txn_last_status(const struct txn *t)
{
    return t ? t->last_status : 0;
}

const char *txn_state_name(enum txn_state s)
{
    switch (s) {
    case TXN_CALLING:
        return "Calling";
    case TXN_TRYING:
        return "Trying";
    case TXN_PROCEEDING:
        return "Proceeding";
    case TXN_COMPLETED:
        return "Completed";
    case TXN_CONFIRMED:
        return "Confirmed";
    case TXN_ACCEPTED:
        return "Accepted";
    case TXN_TERMINATED:
        return "Terminated";
    }
    return "?";
}

struct sip_str txn_request(const struct txn *t)
{
    return buf_view(t ? &t->req : NULL);
}

struct sip_str txn_response(const struct txn *t)
{
    return buf_view(t ? &t->resp : NULL);
}

struct sip_str txn_ack(const struct txn *t)
{
    return buf_view(t ? &t->ack : NULL);
}

void txn_free(struct txn *t)
{
    if (!t)
        return;
    buf_free(&t->req);
    buf_free(&t->resp);
    buf_free(&t->ack);
    buf_free(&t->ack_tmpl);
    free(t);
}
