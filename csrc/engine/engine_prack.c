/* Reliable provisional responses (RFC 3262) in both roles, on the signalling thread under engine->lock.
 *
 * UAS: a reliable 1xx of a server INVITE transaction is kept (struct prack_uas, owned by the etxn) and sent
 * again from a TK_PRACK timer, T1 doubling, until a PRACK with the matching RAck arrives; after 64*T1 the
 * INVITE is answered 504 and the user gets a TIMEOUT.  One reliable provisional is outstanding at a time.
 * A 2xx to the INVITE while a reliable provisional with a session description (an offer or answer) awaits its
 * PRACK is held back and sent when the PRACK arrives (RFC 3262 3); a non-2xx final response drops it.
 * UAC: each new reliable 1xx (RSeq one above the last) is reported once and PRACKed in its early dialog;
 * retransmitted and out-of-order ones are dropped (RFC 3262 4). */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sip/sip_ext.h"

/* A 2xx the user gave while an SDP-carrying reliable provisional awaited its PRACK: its arguments, copied. */
struct held_2xx {
    int status;
    char *reason; /* NULL: the default phrase */
    struct engine_hdr *hdrs;
    size_t nhdrs;
    char *strings; /* the header names and values the hdrs point into, and the reason */
    char *body;
    size_t blen;
};

struct prack_uas {
    uint32_t next_rseq; /* RSeq of the next reliable provisional */
    uint32_t rseq;      /* RSeq of the one awaiting its PRACK */
    uint32_t cseq;      /* CSeq number of the INVITE */
    int pending;        /* a reliable provisional awaits its PRACK */
    int sdp;            /* ... and it carried a session description */
    struct held_2xx *held;
    char *resp;         /* its bytes, for retransmission */
    size_t len;
    uint32_t interval;
    uint64_t next, giveup;
    uint32_t gen;
};

static void held_free(struct held_2xx *h)
{
    if (h == NULL)
        return;
    free(h->hdrs);
    free(h->strings);
    free(h->body);
    free(h);
}

void engine_prack_free(struct prack_uas *r)
{
    if (r == NULL)
        return;
    held_free(r->held);
    free(r->resp);
    free(r);
}

int engine_prack_body_is_sdp(const struct engine_hdr *hdrs, size_t nhdrs, size_t blen)
{
    if (blen == 0)
        return 0;
    for (size_t i = 0; i < nhdrs; i++) {
        const char *n = hdrs[i].name;
        if (strcasecmp(n, "Content-Type") == 0 || strcasecmp(n, "c") == 0) {
            const char *v = hdrs[i].value;
            while (*v == ' ' || *v == '\t')
                v++;
            return strncasecmp(v, "application/sdp", 15) == 0;
        }
    }
    return 1; /* a body without a type is taken as SDP, as the engine's own answers are */
}

static struct held_2xx *held_new(int status, const char *reason, const struct engine_hdr *hdrs, size_t nhdrs,
                                 const char *body, size_t blen)
{
    size_t total = reason ? strlen(reason) + 1 : 0;
    for (size_t i = 0; i < nhdrs; i++)
        total += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 2;
    struct held_2xx *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->strings = malloc(total ? total : 1);
    h->hdrs = calloc(nhdrs ? nhdrs : 1, sizeof(*h->hdrs));
    h->body = blen ? malloc(blen) : NULL;
    if (h->strings == NULL || h->hdrs == NULL || (blen && h->body == NULL)) {
        held_free(h);
        return NULL;
    }
    char *w = h->strings;
    for (size_t i = 0; i < nhdrs; i++) {
        size_t nl = strlen(hdrs[i].name) + 1, vl = strlen(hdrs[i].value) + 1;
        memcpy(w, hdrs[i].name, nl);
        h->hdrs[i].name = w;
        w += nl;
        memcpy(w, hdrs[i].value, vl);
        h->hdrs[i].value = w;
        w += vl;
    }
    if (reason) {
        memcpy(w, reason, strlen(reason) + 1);
        h->reason = w;
    }
    h->nhdrs = nhdrs;
    h->status = status;
    if (blen)
        memcpy(h->body, body, blen);
    h->blen = blen;
    return h;
}

int engine_prack_uas_before_final(struct etxn *x, int status, const char *reason, const struct engine_hdr *hdrs,
                                  size_t nhdrs, const char *body, size_t blen, char *err, size_t errlen)
{
    struct prack_uas *r = x->rel;
    if (r == NULL)
        return 0;
    int is_2xx = status >= 200 && status < 300;
    if (r->held) {
        if (is_2xx) {
            engine_set_err(err, errlen, "a %d is already waiting for the PRACK of RSeq %u", r->held->status,
                           r->rseq);
            return -EPROTO;
        }
        held_free(r->held); /* a failure response (487 to a CANCEL, 504) replaces the 2xx that never left */
        r->held = NULL;
        return 0;
    }
    if (!is_2xx || !r->pending || !r->sdp)
        return 0;
    r->held = held_new(status, reason, hdrs, nhdrs, body, blen);
    if (r->held == NULL) {
        engine_set_err(err, errlen, "cannot keep the %d until the PRACK: out of memory",
                       status);
        return -ENOMEM;
    }
    return 1;
}

static uint32_t invite_cseq(const struct sipmsg *m)
{
    size_t p = 0;
    const struct sip_hdr *h = sipmsg_find(m, SIP_HDR_CSEQ, NULL, &p);
    struct sip_cseq cq;
    if (h == NULL || sip_cseq_parse(h->value, &cq, NULL) < 0)
        return 0;
    return cq.num;
}

int engine_prack_uas_next(struct engine *e, struct etxn *x, uint32_t *rseq, char *err, size_t errlen)
{
    if (!sip_has_option_tag(x->req, SIP_HDR_SUPPORTED, "100rel") &&
        !sip_has_option_tag(x->req, SIP_HDR_REQUIRE, "100rel")) {
        engine_set_err(err, errlen, "the INVITE has no 100rel in Supported or Require: a reliable provisional "
                                    "is not allowed (RFC 3262 3)");
        return -EPROTO;
    }
    if (x->rel && x->rel->pending) {
        engine_set_err(err, errlen, "reliable provisional RSeq %u is not PRACKed yet: one at a time (RFC 3262 3)",
                       x->rel->rseq);
        return -EBUSY;
    }
    if (x->rel == NULL) {
        struct prack_uas *r = calloc(1, sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        char hex[9];
        engine_rand_hex(e, hex, 8);
        /* a random start below 2**30 leaves room for 2**30 increments under the 2**31 limit */
        r->next_rseq = (uint32_t)(strtoul(hex, NULL, 16) & 0x3fffffffu) + 1;
        r->cseq = invite_cseq(x->req);
        x->rel = r;
    }
    *rseq = x->rel->next_rseq;
    return 0;
}

static void schedule(struct engine *e, struct etxn *x)
{
    struct prack_uas *r = x->rel;
    r->gen++;
    if (!r->pending)
        return;
    struct timer_entry te = {.deadline = r->next, .kind = TK_PRACK, .id = x->id, .gen = r->gen};
    (void)timerheap_push(&e->timers, te);
}

int engine_prack_uas_sent(struct engine *e, struct etxn *x, uint32_t rseq, const char *resp, size_t len,
                          int sdp, uint64_t now)
{
    struct prack_uas *r = x->rel;
    if (r == NULL)
        return -EINVAL;
    char *copy = malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, resp, len);
    free(r->resp);
    r->resp = copy;
    r->len = len;
    r->rseq = rseq;
    r->next_rseq = rseq + 1;
    r->pending = 1;
    r->sdp = sdp;
    r->interval = e->cfg.t1_ms;
    r->next = now + e->cfg.t1_ms;
    r->giveup = now + 64ull * e->cfg.t1_ms;
    schedule(e, x);
    return 0;
}

void engine_prack_uas_final(struct etxn *x)
{
    if (x->rel == NULL)
        return;
    x->rel->pending = 0;
    x->rel->gen++;
    free(x->rel->resp);
    x->rel->resp = NULL;
    x->rel->len = 0;
}

void engine_prack_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now)
{
    struct etxn *x = engine_txn_get(e, te->id);
    if (x == NULL || x->rel == NULL || x->rel->gen != te->gen || !x->rel->pending)
        return;
    struct prack_uas *r = x->rel;
    if (now >= r->giveup) {
        r->pending = 0;
        struct engine_event *ev = engine_event_new(ENGINE_EV_TIMEOUT);
        if (ev) {
            ev->transport_id = x->transport_id;
            ev->txn_id = x->id;
            ev->dialog_id = x->dialog_id;
            engine_event_set_src(ev, &x->peer);
            snprintf(ev->info, sizeof(ev->info), "no PRACK for reliable provisional RSeq %u (64*T1): answered 504%s",
                     r->rseq, r->held ? " (the 2xx held for the PRACK was never sent)" : "");
            engine_push_event(e, ev);
        }
        uint32_t did;
        (void)engine_respond_locked(e, x->id, 504, "Server Time-out", NULL, 0, NULL, 0, &did, NULL, 0);
        return;
    }
    e->retransmissions++;
    if (engine_sendto(e, x->transport_id, &x->peer, r->resp, r->len) == 0 && e->trace != NULL)
        engine_trace_record(e, x->transport_id, 1, &x->peer, r->resp, r->len);
    r->interval *= 2;
    r->next = now + r->interval;
    if (r->next > r->giveup)
        r->next = r->giveup;
    schedule(e, x);
}

void engine_prack_on_prack(struct engine *e, struct etxn *px, struct edialog *d)
{
    int status = 481;
    uint32_t answered = 0; /* the INVITE transaction whose provisional this PRACK acknowledges */
    size_t p = 0;
    const struct sip_hdr *h = sipmsg_find(px->req, SIP_HDR_RACK, NULL, &p);
    struct sip_rack rk;
    if (d && h && sip_rack_parse(h->value, &rk) == 0 && sip_str_eqc(rk.method, "INVITE")) {
        size_t i = 0;
        long s;
        while ((s = strmap_next(&e->txns, &i)) >= 0) {
            struct etxn *x = e->txns.s[s].val;
            if (x->kind != TXN_IST || x->dialog_id != d->id || x->rel == NULL || x->rel->cseq != rk.cseq ||
                x->rel->rseq != rk.rseq)
                continue;
            if (x->rel->pending)
                engine_prack_uas_final(x); /* acknowledged: no more retransmissions */
            status = 200;
            answered = x->id;
            break;
        }
    }
    uint32_t did;
    (void)engine_respond_locked(e, px->id, status, NULL, NULL, 0, NULL, 0, &did, NULL, 0);
    /* the 2xx that waited for this PRACK goes now, after the PRACK's 200 */
    struct etxn *x = answered ? engine_txn_get(e, answered) : NULL;
    if (x && x->rel && x->rel->held) {
        struct held_2xx *h = x->rel->held;
        x->rel->held = NULL;
        char err[160];
        if (engine_respond_locked(e, x->id, h->status, h->reason, h->hdrs, h->nhdrs, h->body, h->blen, &did, err,
                                  sizeof(err)) < 0) {
            struct engine_event *ev = engine_event_new(ENGINE_EV_TRANSPORT_ERROR);
            if (ev) {
                ev->transport_id = x->transport_id;
                ev->txn_id = x->id;
                ev->dialog_id = x->dialog_id;
                snprintf(ev->info, sizeof(ev->info), "the %d held for the PRACK could not be sent: %.100s", h->status,
                         err);
                engine_push_event(e, ev);
            }
        }
        held_free(h);
    }
}

int engine_prack_uac_on_1xx(struct engine *e, struct etxn *x, struct edialog *d, const struct sipmsg *resp)
{
    if (!sip_has_option_tag(resp, SIP_HDR_REQUIRE, "100rel"))
        return 1;
    size_t p = 0;
    const struct sip_hdr *h = sipmsg_find(resp, SIP_HDR_RSEQ, NULL, &p);
    uint32_t rseq, cseq = invite_cseq(resp);
    if (h == NULL || sip_rseq_parse(h->value, &rseq) < 0)
        return 1; /* not a usable reliable provisional: reported as a plain one */
    if (d->rel_rseq != 0 && d->rel_cseq == cseq && rseq != d->rel_rseq + 1)
        return 0; /* a retransmission (<= last) or out of order (> last + 1, RFC 3262 4): dropped */
    d->rel_rseq = rseq;
    d->rel_cseq = cseq;
    struct transport *tp = engine_transport(e, x->transport_id);
    if (tp && !tp->no_auto_prack) {
        char rack[48];
        snprintf(rack, sizeof(rack), "%u %u INVITE", rseq, cseq);
        struct engine_hdr hd = {"RAck", rack};
        uint32_t tid;
        char err[128];
        (void)engine_dialog_request_locked(e, d->id, "PRACK", &hd, 1, NULL, 0, &tid, err, sizeof(err));
    }
    return 1;
}
