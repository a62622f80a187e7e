/* User commands: send requests, respond, CANCEL, in-dialog requests.  Each runs in the caller's thread under
 * engine->lock and may send on a socket itself. */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ENGINE_MAX_RESPONSE_HDRS 62


static int is_token_char(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return 1;
    if (c >= 'A' && c <= 'Z')
        return 1;
    if (c >= '0' && c <= '9')
        return 1;
    return strchr("-.!%*_+`'~", c) != NULL && c != '\0';
}

static int check_token(const char *s, size_t max)
{
    size_t n = 0;
    if (s == NULL || *s == '\0')
        return -EINVAL;
    for (; s[n]; n++)
        if (n >= max || !is_token_char((unsigned char)s[n]))
            return -EINVAL;
    return 0;
}

static int check_value(const char *s)
{
    if (s == NULL)
        return -EINVAL;
    for (size_t n = 0; s[n]; n++) {
        if (n > 8192 || s[n] == '\r' || s[n] == '\n')
            return -EINVAL;
    }
    return 0;
}

static int check_headers(const struct engine_hdr *hdrs, size_t nhdrs, char *err, size_t errlen)
{
    for (size_t i = 0; i < nhdrs; i++) {
        if (check_token(hdrs[i].name, 128) < 0) {
            engine_set_err(err, errlen, "header name '%.64s' is not a SIP token", hdrs[i].name ? hdrs[i].name : "");
            return -EINVAL;
        }
        if (check_value(hdrs[i].value) < 0) {
            engine_set_err(err, errlen, "header %.64s: value must be one line without CR or LF", hdrs[i].name);
            return -EINVAL;
        }
        if (strcasecmp(hdrs[i].name, "Content-Length") == 0 || strcasecmp(hdrs[i].name, "l") == 0 ||
            strcasecmp(hdrs[i].name, "Via") == 0 || strcasecmp(hdrs[i].name, "v") == 0) {
            engine_set_err(err, errlen, "header %s is set by the engine", hdrs[i].name);
            return -EINVAL;
        }
    }
    return 0;
}

static int has_header(const struct engine_hdr *hdrs, size_t nhdrs, const char *name)
{
    for (size_t i = 0; i < nhdrs; i++)
        if (strcasecmp(hdrs[i].name, name) == 0)
            return 1;
    return 0;
}

static void add_headers(struct engine *e, struct sipbuf *b, const struct engine_hdr *hdrs, size_t nhdrs)
{
    if (!has_header(hdrs, nhdrs, "User-Agent") && e->cfg.user_agent[0])
        sipbuf_addf(b, "User-Agent: %s\r\n", e->cfg.user_agent);
    for (size_t i = 0; i < nhdrs; i++)
        sipbuf_addf(b, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
}

/* Parse what we built, create the client transaction and send it.  Takes b's buffer. */
static int start_client(struct engine *e, uint32_t transport_id, const struct netaddr *dst, struct sipbuf *b,
                        uint32_t dialog_id, uint32_t *txn_id, char *err, size_t errlen)
{
    struct sipmsg *m = NULL;
    struct sip_error perr;
    memset(&perr, 0, sizeof(perr));
    if (sipmsg_parse(b->p, b->len, &(struct sipmsg_limits){.flags = SIPMSG_SYNTAX_ONLY}, &m, &perr) < 0) {
        engine_set_err(err, errlen, "the request built from these arguments does not parse: %s", perr.reason);
        return -EINVAL;
    }
    struct sip_via via;
    struct sip_cseq cq;
    size_t pos = 0;
    const struct sip_hdr *cs = sipmsg_find(m, SIP_HDR_CSEQ, NULL, &pos);
    if (sipmsg_top_via(m, &via, NULL) < 0 || cs == NULL || sip_cseq_parse(cs->value, &cq, NULL) < 0) {
        sipmsg_free(m);
        engine_set_err(err, errlen, "the request needs a valid CSeq header (e.g. '1 INVITE')");
        return -EINVAL;
    }
    if (!sip_str_eq(cq.method, m->method)) {
        sipmsg_free(m);
        engine_set_err(err, errlen, "CSeq method does not match the request method");
        return -EINVAL;
    }
    if (sip_str_eqc(m->method, "ACK")) {
        int rc = engine_sendto(e, transport_id, dst, b->p, b->len);
        if (e->trace != NULL && rc == 0)
            engine_trace_record(e, transport_id, 1, dst, b->p, b->len);
        sipmsg_free(m);
        if (rc < 0) {
            engine_set_err(err, errlen, "send failed: %s", strerror(-rc));
            return rc;
        }
        *txn_id = 0;
        return 0;
    }
    struct etxn *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        sipmsg_free(m);
        return -ENOMEM;
    }
    size_t klen = 1 + via.branch.len + 1 + cq.method.len;
    x->key = malloc(klen);
    x->kind = sip_str_eqc(m->method, "INVITE") ? TXN_ICT : TXN_NICT;
    struct txn_out out = {0};
    uint64_t now = engine_now_ms();
    x->t = txn_client_new(x->kind, engine_txn_cfg(e, engine_transport(e, transport_id)), b->p, b->len, now, &out);
    x->req = m;
    if (x->key == NULL || x->t == NULL) {
        engine_etxn_destroy(x);
        return -ENOMEM;
    }
    x->key[0] = 'C';
    memcpy(x->key + 1, via.branch.p, via.branch.len);
    x->key[1 + via.branch.len] = '\0';
    memcpy(x->key + 2 + via.branch.len, cq.method.p, cq.method.len);
    x->klen = klen;
    x->transport_id = transport_id;
    x->peer = *dst;
    x->dialog_id = dialog_id;
    if (engine_txn_insert(e, x) < 0) {
        engine_etxn_destroy(x);
        return -ENOMEM;
    }
    *txn_id = x->id;
    engine_txn_outputs(e, x, &out);
    return 0;
}

int engine_request(struct engine *e, uint32_t transport_id, const char *dest_host, uint16_t dest_port,
                   const char *method, const char *ruri, const struct engine_hdr *hdrs, size_t nhdrs, const char *body,
                   size_t blen, uint32_t *txn_id, char *err, size_t errlen)
{
    if (check_token(method, 32) < 0) {
        engine_set_err(err, errlen, "method '%.32s' is not a SIP token", method ? method : "");
        return -EINVAL;
    }
    if (check_value(ruri) < 0 || ruri[0] == '\0' || strchr(ruri, ' ') != NULL) {
        engine_set_err(err, errlen, "Request-URI must be one word without spaces or line breaks");
        return -EINVAL;
    }
    if (check_headers(hdrs, nhdrs, err, errlen) < 0)
        return -EINVAL;
    if (blen && body == NULL)
        return -EINVAL;
    struct netaddr dst;
    if (netaddr_set(&dst, dest_host, dest_port) < 0 || dest_port == 0) {
        engine_set_err(err, errlen, "destination '%.64s' port %u is not a numeric address and port",
                       dest_host ? dest_host : "", dest_port);
        return -EINVAL;
    }
    pthread_mutex_lock(&e->lock);
    int rc = engine_request_locked(e, transport_id, &dst, method, ruri, hdrs, nhdrs, body, blen, txn_id, err, errlen);
    pthread_mutex_unlock(&e->lock);
    if (rc == 0)
        engine_wake(e);
    return rc;
}

int engine_request_locked(struct engine *e, uint32_t transport_id, const struct netaddr *dst, const char *method,
                          const char *ruri, const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen,
                          uint32_t *txn_id, char *err, size_t errlen)
{
    struct transport *tp = engine_transport(e, transport_id);
    if (tp == NULL) {
        engine_set_err(err, errlen, "unknown transport id %u", transport_id);
        return -ENOENT;
    }
    if (dst->ss.ss_family != tp->local.ss.ss_family) {
        engine_set_err(err, errlen, "the destination is not of the transport's address family");
        return -EINVAL;
    }
    char via[256];
    engine_make_via(e, tp, via, sizeof(via));
    struct sipbuf b;
    sipbuf_init(&b);
    sipbuf_addf(&b, "%s %s SIP/2.0\r\nVia: %s\r\n", method, ruri, via);
    if (!has_header(hdrs, nhdrs, "Max-Forwards"))
        sipbuf_addc(&b, "Max-Forwards: 70\r\n");
    add_headers(e, &b, hdrs, nhdrs);
    sipbuf_addf(&b, "Content-Length: %zu\r\n\r\n", blen);
    if (blen)
        sipbuf_add(&b, body, blen);
    int rc = b.err;
    if (rc == 0)
        rc = start_client(e, transport_id, dst, &b, 0, txn_id, err, errlen);
    sipbuf_free(&b);
    return rc;
}

int engine_dialog_request(struct engine *e, uint32_t dialog_id, const char *method, const struct engine_hdr *hdrs,
                          size_t nhdrs, const char *body, size_t blen, uint32_t *txn_id, char *err, size_t errlen)
{
    if (check_token(method, 32) < 0) {
        engine_set_err(err, errlen, "method '%.32s' is not a SIP token", method ? method : "");
        return -EINVAL;
    }
    if (strcmp(method, "ACK") == 0 || strcmp(method, "CANCEL") == 0) {
        engine_set_err(err, errlen, "%s is sent by the engine itself", method);
        return -EINVAL;
    }
    if (check_headers(hdrs, nhdrs, err, errlen) < 0)
        return -EINVAL;
    if (blen && body == NULL)
        return -EINVAL;
    pthread_mutex_lock(&e->lock);
    int rc = engine_dialog_request_locked(e, dialog_id, method, hdrs, nhdrs, body, blen, txn_id, err, errlen);
    pthread_mutex_unlock(&e->lock);
    if (rc == 0)
        engine_wake(e);
    return rc;
}

int engine_dialog_request_locked(struct engine *e, uint32_t dialog_id, const char *method,
                                 const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen,
                                 uint32_t *txn_id, char *err, size_t errlen)
{
    struct edialog *d = engine_dialog_get(e, dialog_id);
    struct transport *tp = d ? engine_transport(e, d->transport_id) : NULL;
    if (d == NULL || tp == NULL) {
        engine_set_err(err, errlen, "no dialog with id %u (it ended or never existed)", dialog_id);
        return -ENOENT;
    }
    char via[256];
    engine_make_via(e, tp, via, sizeof(via));
    struct sipbuf extra, b;
    sipbuf_init(&extra);
    sipbuf_init(&b);
    add_headers(e, &extra, hdrs, nhdrs);
    sipbuf_add(&extra, "", 1);
    int rc = extra.err;
    if (rc == 0) {
        long r = dialog_build_request(d->d, method, 0, via, extra.p, body, blen, NULL, &b);
        rc = r < 0 ? (int)r : 0;
        if (rc < 0)
            engine_set_err(err, errlen, "cannot build %s in dialog %u: %s", method, dialog_id, strerror(-rc));
    }
    if (rc == 0) {
        char host[64];
        uint16_t port;
        struct netaddr dst;
        if (dialog_next_hop(d->d, host, sizeof(host), &port) < 0 || netaddr_set(&dst, host, port) < 0)
            dst = d->peer; /* not a numeric next hop: where the peer last sent from */
        rc = start_client(e, d->transport_id, &dst, &b, d->id, txn_id, err, errlen);
    }
    sipbuf_free(&extra);
    sipbuf_free(&b);
    return rc;
}

static int respond_locked(struct engine *e, uint32_t txn_id, int status, const char *reason,
                          const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen, unsigned flags,
                          uint32_t *dialog_id, char *err, size_t errlen);

int engine_respond(struct engine *e, uint32_t txn_id, int status, const char *reason, const struct engine_hdr *hdrs,
                   size_t nhdrs, const char *body, size_t blen, uint32_t *dialog_id, char *err, size_t errlen)
{
    return engine_respond_ex(e, txn_id, status, reason, hdrs, nhdrs, body, blen, 0, dialog_id, err, errlen);
}

int engine_set_auto_prack(struct engine *e, uint32_t transport_id, int on)
{
    pthread_mutex_lock(&e->lock);
    struct transport *tp = engine_transport(e, transport_id);
    if (tp)
        tp->no_auto_prack = !on;
    pthread_mutex_unlock(&e->lock);
    return tp ? 0 : -ENOENT;
}

int engine_respond_ex(struct engine *e, uint32_t txn_id, int status, const char *reason,
                      const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen, unsigned flags,
                      uint32_t *dialog_id, char *err, size_t errlen)
{
    *dialog_id = 0;
    if (status < 100 || status > 699) {
        engine_set_err(err, errlen, "status %d is not between 100 and 699", status);
        return -EINVAL;
    }
    if (reason && check_value(reason) < 0) {
        engine_set_err(err, errlen, "reason phrase must be one line");
        return -EINVAL;
    }
    if (check_headers(hdrs, nhdrs, err, errlen) < 0)
        return -EINVAL;
    if (blen && body == NULL)
        return -EINVAL;
    pthread_mutex_lock(&e->lock);
    int rc = respond_locked(e, txn_id, status, reason, hdrs, nhdrs, body, blen, flags, dialog_id, err, errlen);
    pthread_mutex_unlock(&e->lock);
    if (rc == 0)
        engine_wake(e);
    return rc;
}

int engine_respond_locked(struct engine *e, uint32_t txn_id, int status, const char *reason,
                          const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen,
                          uint32_t *dialog_id, char *err, size_t errlen)
{
    return respond_locked(e, txn_id, status, reason, hdrs, nhdrs, body, blen, 0, dialog_id, err, errlen);
}

static int respond_locked(struct engine *e, uint32_t txn_id, int status, const char *reason,
                          const struct engine_hdr *hdrs, size_t nhdrs, const char *body, size_t blen, unsigned flags,
                          uint32_t *dialog_id, char *err, size_t errlen)
{
    *dialog_id = 0;
    struct etxn *x = engine_txn_get(e, txn_id);
    if (x == NULL || (x->kind != TXN_IST && x->kind != TXN_NIST)) {
        engine_set_err(err, errlen, "no server transaction with id %u (it ended or was answered already)", txn_id);
        return -ENOENT;
    }
    if (txn_last_status(x->t) >= 200) {
        engine_set_err(err, errlen, "transaction %u already has a final response %d", txn_id,
                       txn_last_status(x->t));
        return -EPROTO;
    }
    int is_invite = x->kind == TXN_IST;
    if (is_invite && status >= 200) {
        /* RFC 3262 3: no 2xx while a reliable provisional with SDP is unacknowledged; it waits for the PRACK */
        int held = engine_prack_uas_before_final(x, status, reason, hdrs, nhdrs, body, blen, err, errlen);
        if (held != 0) {
            *dialog_id = held > 0 ? x->dialog_id : 0;
            return held > 0 ? 0 : held;
        }
    }
    /* a reliable provisional (RFC 3262 3): Require: 100rel and the next RSeq after the user's headers */
    int reliable = (flags & ENGINE_RESPOND_RELIABLE) && is_invite && status > 100 && status < 200;
    uint32_t rseq = 0;
    char rseq_s[16];
    struct engine_hdr relh[ENGINE_MAX_RESPONSE_HDRS + 2];
    if (reliable) {
        if (nhdrs > ENGINE_MAX_RESPONSE_HDRS) {
            engine_set_err(err, errlen, "too many headers for a reliable provisional (at most %d)",
                           ENGINE_MAX_RESPONSE_HDRS);
            return -EINVAL;
        }
        int r = engine_prack_uas_next(e, x, &rseq, err, errlen);
        if (r < 0)
            return r;
        memcpy(relh, hdrs, nhdrs * sizeof(*hdrs));
        snprintf(rseq_s, sizeof(rseq_s), "%u", rseq);
        relh[nhdrs++] = (struct engine_hdr){"Require", "100rel"};
        relh[nhdrs++] = (struct engine_hdr){"RSeq", rseq_s};
        hdrs = relh;
    }
    struct sip_nameaddr na;
    size_t p = 0;
    const struct sip_hdr *to = sipmsg_find(x->req, SIP_HDR_TO, NULL, &p);
    int in_dialog = to && sip_nameaddr_parse(to->value, &na, NULL) == 0 && na.tag.len > 0;
    if (status > 100 && x->to_tag[0] == '\0') {
        if (in_dialog && na.tag.len < sizeof(x->to_tag)) {
            memcpy(x->to_tag, na.tag.p, na.tag.len);
            x->to_tag[na.tag.len] = '\0';
        } else {
            engine_rand_hex(e, x->to_tag, 12);
        }
    }
    /* a 101-299 to an INVITE outside a dialog creates one (RFC 3261 12.1.1): early with a 1xx, confirmed by the
     * 2xx; the transaction keeps its id so that a later response or a CANCEL finds the early dialog */
    int creates_dialog = is_invite && status > 100 && status < 300 && !in_dialog;
    /* a 2xx to a SUBSCRIBE or REFER creates a dialog (RFC 6665 4.2.1), unless it says Refer-Sub: false; inside
     * a dialog a REFER's 2xx adds a subscription usage to it */
    int is_sub = !is_invite && x->req && engine_is_sub_method(x->req->method) && status >= 200 && status < 300 &&
                 !(sip_str_eqc(x->req->method, "REFER") && engine_hdrs_refer_sub_false(hdrs, nhdrs));
    if (is_sub && !in_dialog)
        creates_dialog = 1;
    struct sipbuf b;
    sipbuf_init(&b);
    int rc = engine_build_response(e, x->req, &x->peer, status, reason, status > 100 ? x->to_tag : NULL,
                                   creates_dialog, hdrs, nhdrs, body, blen, &b);
    uint32_t did = x->dialog_id;
    struct edialog *d = did ? engine_dialog_get(e, did) : NULL;
    if (rc == 0 && creates_dialog && d == NULL) {
        struct dialog *dl = NULL;
        rc = dialog_new_uas(x->req, x->to_tag, &dl);
        if (rc == 0 && (rc = engine_dialog_add(e, dl, x->transport_id, &x->peer, &d)) < 0)
            dialog_free(dl);
        if (rc < 0)
            engine_set_err(err, errlen, "cannot create the dialog: the %s lacks a usable Contact or tags",
                           is_sub ? "request" : "INVITE");
        if (d)
            x->dialog_id = did = d->id;
        if (d && is_sub) {
            d->d->state = DIALOG_CONFIRMED;
            d->sub_only = 1;
            d->subs = 1;
            is_sub = 0; /* counted */
        }
    }
    if (rc == 0) {
        struct txn_out out = {0};
        uint64_t now = engine_now_ms();
        rc = txn_server_respond(x->t, status, b.p, b.len, now, &out);
        if (rc == 0 && reliable)
            (void)engine_prack_uas_sent(e, x, rseq, b.p, b.len, engine_prack_body_is_sdp(hdrs, nhdrs, blen), now);
        else if (rc == 0 && is_invite && status >= 200)
            engine_prack_uas_final(x);
        if (rc == 0) {
            if (d && is_invite && status >= 200 && status < 300) {
                d->d->state = DIALOG_CONFIRMED;
                struct sip_cseq cq;
                size_t p = 0;
                const struct sip_hdr *cs = sipmsg_find(x->req, SIP_HDR_CSEQ, NULL, &p);
                if (cs && sip_cseq_parse(cs->value, &cq, NULL) == 0) {
                    free(d->resp2xx);
                    d->resp2xx = malloc(b.len);
                    if (d->resp2xx) {
                        memcpy(d->resp2xx, b.p, b.len);
                        d->resp2xx_len = b.len;
                        d->resp2xx_cseq = cq.num;
                        d->resp2xx_dest = x->peer;
                        d->awaiting_ack = !e->tcfg.reliable;
                        d->rtx_interval = e->cfg.t1_ms;
                        d->rtx_next = now + e->cfg.t1_ms;
                        d->rtx_giveup = now + 64ull * e->cfg.t1_ms;
                        engine_schedule_dialog(e, d);
                    }
                }
            }
            if (d && is_invite && status >= 300 && d->d->state == DIALOG_EARLY) {
                engine_dialog_remove(e, d, 0);
                d = NULL;
                x->dialog_id = did = 0;
            }
            /* a challenge (401/407) to a BYE keeps the dialog: the peer sends the BYE again with credentials */
            int bye_done = !is_invite && status >= 200 && status != 401 && status != 407 && x->req &&
                           sip_str_eqc(x->req->method, "BYE");
            /* answering a NOTIFY with Subscription-State: terminated ends that subscription */
            int sub_done = !is_invite && status >= 200 && status != 401 && status != 407 &&
                           engine_notify_terminates(x->req);
            if (d && is_sub && in_dialog && sip_str_eqc(x->req->method, "REFER"))
                d->subs++;
            engine_txn_outputs(e, x, &out); /* may free x */
            if (bye_done && d)
                engine_dialog_bye_done(e, d);
            else if (sub_done && d)
                engine_dialog_sub_ended(e, d);
            *dialog_id = did;
        } else {
            engine_set_err(err, errlen, "the transaction cannot send a %d now", status);
        }
    }
    sipbuf_free(&b);
    return rc;
}

int engine_cancel(struct engine *e, uint32_t txn_id, uint32_t *cancel_txn_id, char *err, size_t errlen)
{
    pthread_mutex_lock(&e->lock);
    struct etxn *x = engine_txn_get(e, txn_id);
    if (x == NULL || x->kind != TXN_ICT) {
        pthread_mutex_unlock(&e->lock);
        engine_set_err(err, errlen, "no INVITE client transaction with id %u", txn_id);
        return -ENOENT;
    }
    if (txn_last_status(x->t) >= 200) {
        pthread_mutex_unlock(&e->lock);
        engine_set_err(err, errlen, "the INVITE already has a final response %d", txn_last_status(x->t));
        return -EPROTO;
    }
    const struct sipmsg *r = x->req;
    struct sipbuf b;
    sipbuf_init(&b);
    sipbuf_addf(&b, "CANCEL %.*s SIP/2.0\r\n", (int)r->uri.len, r->uri.p);
    struct sip_cseq cq = {0, {NULL, 0}};
    int first_via = 1;
    for (size_t i = 0; i < r->nhdrs; i++) {
        const struct sip_hdr *h = &r->hdrs[i];
        const char *name = NULL;
        switch (h->id) {
        case SIP_HDR_VIA:
            if (!first_via)
                continue;
            first_via = 0;
            name = "Via";
            break;
        case SIP_HDR_ROUTE: name = "Route"; break;
        case SIP_HDR_FROM: name = "From"; break;
        case SIP_HDR_TO: name = "To"; break;
        case SIP_HDR_CALL_ID: name = "Call-ID"; break;
        case SIP_HDR_MAX_FORWARDS: name = "Max-Forwards"; break;
        case SIP_HDR_CSEQ: (void)sip_cseq_parse(h->value, &cq, NULL); continue;
        default: continue;
        }
        sipbuf_addf(&b, "%s: %.*s\r\n", name, (int)h->value.len, h->value.p);
    }
    sipbuf_addf(&b, "CSeq: %u CANCEL\r\n", cq.num);
    if (e->cfg.user_agent[0])
        sipbuf_addf(&b, "User-Agent: %s\r\n", e->cfg.user_agent);
    sipbuf_addc(&b, "Content-Length: 0\r\n\r\n");
    int rc = b.err;
    if (rc == 0) {
        struct netaddr dst = x->peer;
        rc = start_client(e, x->transport_id, &dst, &b, x->dialog_id, cancel_txn_id, err, errlen);
    }
    pthread_mutex_unlock(&e->lock);
    sipbuf_free(&b);
    if (rc == 0)
        engine_wake(e);
    return rc;
}

int engine_send_raw(struct engine *e, uint32_t transport_id, const char *host, uint16_t port, const char *data,
                    size_t len, char *err, size_t errlen)
{
    struct netaddr dst;
    if (netaddr_set(&dst, host, port) < 0 || port == 0) {
        engine_set_err(err, errlen, "destination is not a numeric address and port");
        return -EINVAL;
    }
    pthread_mutex_lock(&e->lock);
    int rc = engine_sendto(e, transport_id, &dst, data, len);
    if (e->trace != NULL && rc == 0)
        engine_trace_record(e, transport_id, 1, &dst, data, len);
    pthread_mutex_unlock(&e->lock);
    if (rc < 0)
        engine_set_err(err, errlen, rc == -ENOENT ? "unknown transport id %u" : "send failed (transport %u)",
                       transport_id);
    return rc;
}

static void copy_c(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

int engine_dialog_info(struct engine *e, uint32_t dialog_id, struct engine_dialog_info *out)
{
    pthread_mutex_lock(&e->lock);
    struct edialog *d = engine_dialog_get(e, dialog_id);
    if (d == NULL) {
        pthread_mutex_unlock(&e->lock);
        return -ENOENT;
    }
    copy_c(out->call_id, sizeof(out->call_id), d->d->call_id);
    copy_c(out->local_tag, sizeof(out->local_tag), d->d->local_tag);
    copy_c(out->remote_tag, sizeof(out->remote_tag), d->d->remote_tag);
    copy_c(out->remote_target, sizeof(out->remote_target), d->d->remote_target);
    out->state = (int)d->d->state;
    out->is_uac = d->d->is_uac;
    out->local_cseq = d->d->local_cseq;
    pthread_mutex_unlock(&e->lock);
    return 0;
}

void engine_free_all(struct engine *e)
{
    size_t i = 0;
    long s;
    while ((s = strmap_next(&e->txns, &i)) >= 0) {
        engine_etxn_destroy(e->txns.s[s].val);
    }
    i = 0;
    while ((s = strmap_next(&e->dialogs, &i)) >= 0) {
        engine_edialog_destroy(e->dialogs.s[s].val);
    }
    engine_conns_free_all(e);
    i = 0;
    while ((s = strmap_next(&e->transports, &i)) >= 0)
        engine_transport_destroy(e->transports.s[s].val);
    engine_trace_free_ring(e->trace);
    e->trace = NULL;
}
