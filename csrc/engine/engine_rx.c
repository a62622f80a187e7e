/* Received messages: matching to transactions and dialogs, routine answers, events; timers. */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 1024

struct etxn *engine_txn_get(struct engine *e, uint32_t id)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    return strmap_get(&e->txns, k, 4);
}

struct edialog *engine_dialog_get(struct engine *e, uint32_t id)
{
    unsigned char k[4];
    strmap_idkey(id, k);
    return strmap_get(&e->dialogs, k, 4);
}

void engine_make_via(struct engine *e, const struct transport *tp, char *via, size_t vlen)
{
    char branch[17];
    engine_rand_hex(e, branch, 16);
    int v6 = netaddr_is_ipv6(&tp->local);
    /* on TCP and TLS we ask the peer to reuse this connection for its requests to us (RFC 5923 5) */
    snprintf(via, vlen, "SIP/2.0/%s %s%s%s:%u;rport%s;branch=z9hG4bK%s", engine_tp_name(tp), v6 ? "[" : "", tp->host,
             v6 ? "]" : "", tp->port, tp->kind == TP_UDP ? "" : ";alias", branch);
}

/* "C"/"S" + branch + NUL + method; RFC 2543 peers without a branch are keyed by Call-ID, CSeq and From tag. */
static long txn_key(char side, const struct sipmsg *m, const struct sip_via *via, struct sip_str method, char *key,
                    size_t klen)
{
    struct sip_str branch = via->branch;
    char alt[KEY_MAX];
    if (branch.len < 7 || strncmp(branch.p, "z9hG4bK", 7) != 0) {
        size_t p = 0;
        const struct sip_hdr *cid = sipmsg_find(m, SIP_HDR_CALL_ID, NULL, &p);
        p = 0;
        const struct sip_hdr *cs = sipmsg_find(m, SIP_HDR_CSEQ, NULL, &p);
        p = 0;
        const struct sip_hdr *fr = sipmsg_find(m, SIP_HDR_FROM, NULL, &p);
        struct sip_cseq cq = {0, {NULL, 0}};
        struct sip_nameaddr na;
        memset(&na, 0, sizeof(na));
        if (cs)
            (void)sip_cseq_parse(cs->value, &cq, NULL);
        if (fr)
            (void)sip_nameaddr_parse(fr->value, &na, NULL);
        int n = snprintf(alt, sizeof(alt), "2543|%.*s|%u|%.*s|%.*s", cid ? (int)cid->value.len : 0,
                         cid ? cid->value.p : "", cq.num, (int)na.tag.len, na.tag.p ? na.tag.p : "",
                         (int)branch.len, branch.p ? branch.p : "");
        if (n < 0 || (size_t)n >= sizeof(alt))
            return -E2BIG;
        branch.p = alt;
        branch.len = (size_t)n;
    }
    size_t need = 1 + branch.len + 1 + method.len;
    if (need > klen)
        return -E2BIG;
    key[0] = side;
    memcpy(key + 1, branch.p, branch.len);
    key[1 + branch.len] = '\0';
    if (method.len)
        memcpy(key + 2 + branch.len, method.p, method.len);
    return (long)need;
}

void engine_etxn_destroy(struct etxn *x)
{
    free(x->key);
    sipmsg_free(x->req);
    txn_free(x->t);
    engine_prack_free(x->rel);
    free(x);
}

void engine_edialog_destroy(struct edialog *d)
{
    free(d->key);
    free(d->resp2xx);
    free(d->ack);
    dialog_free(d->d);
    free(d);
}

int engine_txn_insert(struct engine *e, struct etxn *x)
{
    unsigned char k[4];
    x->id = engine_new_id(e);
    strmap_idkey(x->id, k);
    if (strmap_put(&e->txns, k, 4, x) < 0)
        return -ENOMEM;
    if (strmap_put(&e->txn_by_key, x->key, x->klen, x) < 0) {
        strmap_del(&e->txns, k, 4);
        return -ENOMEM;
    }
    return 0;
}

void engine_txn_remove(struct engine *e, struct etxn *x)
{
    unsigned char k[4];
    strmap_idkey(x->id, k);
    strmap_del(&e->txns, k, 4);
    if (x->key && strmap_get(&e->txn_by_key, x->key, x->klen) == x)
        strmap_del(&e->txn_by_key, x->key, x->klen);
    engine_etxn_destroy(x);
}

void engine_dialog_remove(struct engine *e, struct edialog *d, int notify)
{
    unsigned char k[4];
    strmap_idkey(d->id, k);
    strmap_del(&e->dialogs, k, 4);
    if (d->key && strmap_get(&e->dlg_by_key, d->key, d->klen) == d)
        strmap_del(&e->dlg_by_key, d->key, d->klen);
    if (notify && !d->quiet) {
        struct engine_event *ev = engine_event_new(ENGINE_EV_DIALOG_ENDED);
        if (ev) {
            ev->dialog_id = d->id;
            ev->transport_id = d->transport_id;
            engine_push_event(e, ev);
        }
    }
    engine_edialog_destroy(d);
}

int engine_dialog_add(struct engine *e, struct dialog *dl, uint32_t transport_id, const struct netaddr *peer,
                      struct edialog **out)
{
    char key[KEY_MAX];
    long kl = dialog_key(sip_str_c(dl->call_id), sip_str_c(dl->local_tag), sip_str_c(dl->remote_tag), key,
                         sizeof(key));
    if (kl < 0)
        return (int)kl;
    struct edialog *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->key = malloc((size_t)kl);
    if (d->key == NULL) {
        free(d);
        return -ENOMEM;
    }
    memcpy(d->key, key, (size_t)kl);
    d->klen = (size_t)kl;
    d->d = dl;
    d->transport_id = transport_id;
    d->peer = *peer;
    d->id = engine_new_id(e);
    unsigned char k[4];
    strmap_idkey(d->id, k);
    if (strmap_put(&e->dialogs, k, 4, d) < 0 || strmap_put(&e->dlg_by_key, d->key, d->klen, d) < 0) {
        strmap_del(&e->dialogs, k, 4);
        free(d->key);
        free(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

struct edialog *engine_dialog_find(struct engine *e, struct sip_str call_id, struct sip_str local_tag,
                                   struct sip_str remote_tag)
{
    char key[KEY_MAX];
    long kl = dialog_key(call_id, local_tag, remote_tag, key, sizeof(key));
    if (kl < 0)
        return NULL;
    return strmap_get(&e->dlg_by_key, key, (size_t)kl);
}

static void push_simple(struct engine *e, enum engine_event_kind kind, uint32_t transport_id, uint32_t txn_id,
                        uint32_t dialog_id, const struct netaddr *src, const char *info)
{
    struct engine_event *ev = engine_event_new(kind);
    if (ev == NULL)
        return;
    ev->transport_id = transport_id;
    ev->txn_id = txn_id;
    ev->dialog_id = dialog_id;
    if (src)
        engine_event_set_src(ev, src);
    if (info)
        snprintf(ev->info, sizeof(ev->info), "%s", info);
    engine_push_event(e, ev);
}

/* Send data; a failure becomes a TRANSPORT_ERROR event and is returned (0 or a negative errno). */
static int send_or_report(struct engine *e, uint32_t transport_id, const struct netaddr *to, struct sip_str data,
                          uint32_t txn_id, uint32_t dialog_id)
{
    if (data.len == 0)
        return 0;
    int rc = engine_sendto_ctx(e, transport_id, to, data.p, data.len, txn_id, dialog_id);
    if (e->trace != NULL && rc == 0)
        engine_trace_record(e, transport_id, 1, to, data.p, data.len);
    if (rc < 0) {
        char info[160];
        snprintf(info, sizeof(info), "send failed: %s", strerror(-rc));
        push_simple(e, ENGINE_EV_TRANSPORT_ERROR, transport_id, txn_id, dialog_id, to, info);
    }
    return rc;
}

/* A BYE that ends without a final response (timeout, transport error) ends its dialog all the same
 * (RFC 3261 15.1.1). */
static void end_dialog_of_failed_bye(struct engine *e, const struct etxn *x)
{
    if (x->kind != TXN_NICT || x->dialog_id == 0 || x->req == NULL || !sip_str_eqc(x->req->method, "BYE"))
        return;
    struct edialog *d = engine_dialog_get(e, x->dialog_id);
    if (d)
        engine_dialog_remove(e, d, 1);
}

size_t engine_fail_txns_to(struct engine *e, uint32_t transport_id, const struct netaddr *peer, const char *info)
{
    size_t n = 0, i = 0;
    long s;
    while ((s = strmap_next(&e->txns, &i)) >= 0) {
        struct etxn *x = e->txns.s[s].val;
        if (x->transport_id != transport_id || (x->kind != TXN_ICT && x->kind != TXN_NICT) ||
            !netaddr_eq(&x->peer, peer) || txn_state(x->t) == TXN_COMPLETED || txn_state(x->t) == TXN_ACCEPTED)
            continue;
        push_simple(e, ENGINE_EV_TRANSPORT_ERROR, transport_id, x->id, x->dialog_id, peer, info);
        end_dialog_of_failed_bye(e, x);
        engine_txn_remove(e, x);
        n++;
        i = 0; /* the table changed: start over */
    }
    return n;
}

void engine_txn_outputs(struct engine *e, struct etxn *x, const struct txn_out *out)
{
    int send_failed = 0;
    if (out->send_request) {
        if (x->sends++ > 0)
            e->retransmissions++;
        /* a client transaction whose request cannot be sent ends at once (RFC 3261 17.1.4) */
        send_failed = send_or_report(e, x->transport_id, &x->peer, txn_request(x->t), x->id, x->dialog_id) < 0;
    }
    if (out->send_response)
        send_or_report(e, x->transport_id, &x->peer, txn_response(x->t), x->id, x->dialog_id);
    if (out->send_ack)
        send_or_report(e, x->transport_id, &x->peer, txn_ack(x->t), x->id, x->dialog_id);
    if (out->timeout) {
        char info[64];
        snprintf(info, sizeof(info), "Timer %c", out->timer ? out->timer : '?');
        push_simple(e, ENGINE_EV_TIMEOUT, x->transport_id, x->id, x->dialog_id, &x->peer, info);
    }
    if (send_failed || out->timeout)
        end_dialog_of_failed_bye(e, x);
    if (send_failed || out->terminated) {
        engine_txn_remove(e, x);
        return;
    }
    /* a server transaction with its final response only matches retransmissions and ACKs by its key: the
     * request is not needed any more (it was most of the memory a completed transaction kept for Timer J/L) */
    if ((x->kind == TXN_IST || x->kind == TXN_NIST) && x->req && txn_last_status(x->t) >= 200) {
        sipmsg_free(x->req);
        x->req = NULL;
    }
    engine_schedule_txn(e, x);
}


static const char *default_reason(int status)
{
    return sip_reason_phrase(status);
}

/* The top Via value of a response with received= and rport= filled in (RFC 3261 18.2.1, RFC 3581 section 4).
 * dest is where the response goes: the request's source address (with the Via's port when no rport was asked,
 * which rport= then does not need).  A Via that does not parse is copied as it is. */
static void add_top_via(struct sipbuf *b, struct sip_str value, const struct netaddr *dest)
{
    struct sip_str rest = value, el;
    struct sip_via via;
    if (sip_list_next(&rest, &el) < 0 || sip_via_parse(el, &via, NULL) < 0) {
        sipbuf_adds(b, value);
        return;
    }
    char host[64];
    uint16_t port = 0;
    netaddr_format(dest, host, sizeof(host), &port);
    /* sent-by, then the parameters in their order, rport given its value and any received dropped */
    size_t head = via.params.len ? (size_t)(via.params.p - el.p) : el.len;
    while (head > 0 && (el.p[head - 1] == ';' || el.p[head - 1] == ' ' || el.p[head - 1] == '\t'))
        head--;
    sipbuf_add(b, el.p, head);
    struct sip_str params = via.params, name, val;
    const char *start = params.p;
    while (sip_param_next(&params, &name, &val) == 0) {
        struct sip_str item = {start, (size_t)(params.p - start)};
        start = params.p;
        while (item.len && (item.p[item.len - 1] == ';' || item.p[item.len - 1] == ' ' || item.p[item.len - 1] == '\t'))
            item.len--;
        while (item.len && (item.p[0] == ' ' || item.p[0] == '\t')) {
            item.p++;
            item.len--;
        }
        if (sip_str_ieqc(name, "received"))
            continue;
        if (sip_str_ieqc(name, "rport")) {
            char pn[8];
            size_t pl = sizeof(pn);
            unsigned pv = port;
            do {
                pn[--pl] = (char)('0' + pv % 10);
                pv /= 10;
            } while (pv && pl > 0);
            sipbuf_addc(b, ";rport=");
            sipbuf_add(b, pn + pl, sizeof(pn) - pl);
            continue;
        }
        sipbuf_addc(b, ";");
        sipbuf_adds(b, item);
    }
    if (via.has_rport || !sip_str_eqc(via.host, host)) {
        sipbuf_addc(b, ";received=");
        sipbuf_addc(b, host);
    }
    /* the other Via values of the same header line, unchanged */
    const char *tail = el.p + el.len, *end = value.p + value.len;
    sipbuf_add(b, tail, (size_t)(end - tail));
}

int engine_build_response(struct engine *e, const struct sipmsg *req, const struct netaddr *dest, int status,
                          const char *reason, const char *to_tag, int copy_rr, const struct engine_hdr *hdrs,
                          size_t nhdrs, const char *body, size_t blen, struct sipbuf *b)
{
    int top_via = 1;
    if (status < 100 || status > 699)
        return -EINVAL;
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10), (char)('0' + status % 10), ' '};
    sipbuf_addc(b, "SIP/2.0 ");
    sipbuf_add(b, code, 4);
    sipbuf_addc(b, reason && *reason ? reason : default_reason(status));
    sipbuf_addc(b, "\r\n");
    for (size_t i = 0; i < req->nhdrs; i++) {
        const struct sip_hdr *h = &req->hdrs[i];
        const char *name = NULL; /* copied as is under its long name (RFC 3261 8.2.6.2) */
        switch (h->id) {
        case SIP_HDR_VIA:
            sipbuf_addc(b, "Via: ");
            if (top_via && dest)
                add_top_via(b, h->value, dest);
            else
                sipbuf_adds(b, h->value);
            top_via = 0;
            sipbuf_addc(b, "\r\n");
            continue;
        case SIP_HDR_TO: {
            struct sip_nameaddr na;
            sipbuf_addc(b, "To: ");
            sipbuf_adds(b, h->value);
            if (to_tag && sip_nameaddr_parse(h->value, &na, NULL) == 0 && na.tag.len == 0) {
                sipbuf_addc(b, ";tag=");
                sipbuf_addc(b, to_tag);
            }
            sipbuf_addc(b, "\r\n");
            continue;
        }
        case SIP_HDR_FROM: name = "From"; break;
        case SIP_HDR_CALL_ID: name = "Call-ID"; break;
        case SIP_HDR_CSEQ: name = "CSeq"; break;
        case SIP_HDR_RECORD_ROUTE: name = copy_rr ? "Record-Route" : NULL; break;
        default: break;
        }
        if (name != NULL) {
            sipbuf_addc(b, name);
            sipbuf_addc(b, ": ");
            sipbuf_adds(b, h->value);
            sipbuf_addc(b, "\r\n");
        }
    }
    int have_server = 0;
    for (size_t i = 0; i < nhdrs; i++)
        if (strcasecmp(hdrs[i].name, "Server") == 0 || strcasecmp(hdrs[i].name, "User-Agent") == 0)
            have_server = 1;
    if (!have_server && e->cfg.user_agent[0]) {
        sipbuf_addc(b, "Server: ");
        sipbuf_addc(b, e->cfg.user_agent);
        sipbuf_addc(b, "\r\n");
    }
    for (size_t i = 0; i < nhdrs; i++) {
        sipbuf_addc(b, hdrs[i].name);
        sipbuf_addc(b, ": ");
        sipbuf_addc(b, hdrs[i].value);
        sipbuf_addc(b, "\r\n");
    }
    char num[24];
    size_t nl = sizeof(num);
    size_t v = blen;
    do {
        num[--nl] = (char)('0' + v % 10);
        v /= 10;
    } while (v && nl > 0);
    sipbuf_addc(b, "Content-Length: ");
    sipbuf_add(b, num + nl, sizeof(num) - nl);
    sipbuf_addc(b, "\r\n\r\n");
    if (blen)
        sipbuf_add(b, body, blen);
    return b->err;
}

/* Where responses to a request go: the source address, with the Via's port unless rport was asked (RFC 3581);
 * on a stream transport back on the connection the request came on, i.e. its source (RFC 3261 18.2.2). */
static void response_dest(const struct transport *tp, const struct sip_via *via, const struct netaddr *src,
                          struct netaddr *out)
{
    *out = *src;
    if (tp->kind == TP_UDP && !via->has_rport && via->port > 0 && via->port <= 65535)
        netaddr_set_port(out, (uint16_t)via->port);
}

/* Stateless response (no transaction), e.g. 481 to a stray CANCEL; to_tag NULL makes a new one. */
static void respond_stateless(struct engine *e, struct transport *tp, const struct sipmsg *req,
                              const struct sip_via *via, const struct netaddr *src, int status, const char *to_tag)
{
    struct sipbuf b;
    sipbuf_init(&b);
    char tag[13];
    if (to_tag == NULL) {
        engine_rand_hex(e, tag, 12);
        to_tag = tag;
    }
    struct netaddr dst;
    response_dest(tp, via, src, &dst);
    if (engine_build_response(e, req, &dst, status, NULL, to_tag, 0, NULL, 0, NULL, 0, &b) == 0)
        send_or_report(e, tp->id, &dst, (struct sip_str){b.p, b.len}, 0, 0);
    sipbuf_free(&b);
}

static struct sipmsg *reparse(const struct sipmsg *m)
{
    struct sipmsg *c = NULL;
    if (sipmsg_parse(m->buf, m->len, &(struct sipmsg_limits){.flags = SIPMSG_SYNTAX_ONLY}, &c, NULL) < 0)
        return NULL;
    return c;
}

/* Show a message event to the fast path before anything is made for it: the event is a probe on the stack and
 * msg is borrowed, so a message a fast call swallows costs no event allocation, no address formatting and, for
 * a request the transaction keeps, no copy.  1 = swallowed: nothing is to be queued. */
static int fast_swallows(struct engine *e, enum engine_event_kind kind, uint32_t transport_id, uint32_t txn_id,
                         uint32_t dialog_id, struct sipmsg *msg /* borrows */)
{
    if (e->fast == NULL)
        return 0;
    struct engine_event probe = {.kind = kind, .transport_id = transport_id, .txn_id = txn_id,
                                 .dialog_id = dialog_id, .msg = msg,
                                 .status = msg && !msg->is_request ? msg->status : 0};
    return engine_fast_on_event(e, &probe);
}

/* Queue a message event the fast path has already seen (and not swallowed). */
static void queue_msg_event(struct engine *e, enum engine_event_kind kind, uint32_t transport_id, uint32_t txn_id,
                            uint32_t dialog_id, const struct netaddr *src, struct sipmsg *msg /* takes */)
{
    struct engine_event *ev = engine_event_new(kind);
    if (ev == NULL) {
        sipmsg_free(msg);
        return;
    }
    ev->transport_id = transport_id;
    ev->txn_id = txn_id;
    ev->dialog_id = dialog_id;
    ev->msg = msg;
    ev->status = msg && !msg->is_request ? msg->status : 0;
    if (src)
        engine_event_set_src(ev, src);
    engine_queue_event(e, ev);
}

static void push_msg_event(struct engine *e, enum engine_event_kind kind, uint32_t transport_id, uint32_t txn_id,
                           uint32_t dialog_id, const struct netaddr *src, struct sipmsg *msg /* takes */)
{
    if (fast_swallows(e, kind, transport_id, txn_id, dialog_id, msg)) {
        sipmsg_free(msg);
        return;
    }
    queue_msg_event(e, kind, transport_id, txn_id, dialog_id, src, msg);
}

static struct sip_str hdr_value(const struct sipmsg *m, enum sip_hdr_id id)
{
    size_t p = 0;
    const struct sip_hdr *h = sipmsg_find(m, id, NULL, &p);
    return h ? h->value : (struct sip_str){NULL, 0};
}

static struct sip_str tag_of(const struct sipmsg *m, enum sip_hdr_id id)
{
    struct sip_nameaddr na;
    struct sip_str v = hdr_value(m, id);
    if (v.len == 0 || sip_nameaddr_parse(v, &na, NULL) < 0)
        return (struct sip_str){NULL, 0};
    return na.tag;
}

static void on_cancel(struct engine *e, struct transport *tp, struct sipmsg *msg, const struct sip_via *via,
                      const struct netaddr *src)
{
    char key[KEY_MAX];
    long kl = txn_key('S', msg, via, sip_str_c("INVITE"), key, sizeof(key));
    struct etxn *inv = kl > 0 ? strmap_get(&e->txn_by_key, key, (size_t)kl) : NULL;
    if (inv == NULL || inv->kind != TXN_IST) {
        respond_stateless(e, tp, msg, via, src, 481, NULL);
        sipmsg_free(msg);
        return;
    }
    /* 200 to the CANCEL (stateless: a retransmitted CANCEL gets the same answer), with the To tag of the
     * INVITE's responses (RFC 3261 9.2) */
    if (inv->to_tag[0] == '\0')
        engine_rand_hex(e, inv->to_tag, 12);
    respond_stateless(e, tp, msg, via, src, 200, inv->to_tag);
    if (txn_last_status(inv->t) < 200) {
        struct sipbuf b;
        sipbuf_init(&b);
        if (engine_build_response(e, inv->req, &inv->peer, 487, NULL, inv->to_tag, 0, NULL, 0, NULL, 0, &b) == 0) {
            struct txn_out out = {0};
            uint32_t id = inv->id, tid = tp->id, did = inv->dialog_id;
            if (txn_server_respond(inv->t, 487, b.p, b.len, engine_now_ms(), &out) == 0) {
                engine_txn_outputs(e, inv, &out);
                /* an early dialog created by a 1xx dies with the 487 */
                struct edialog *d = did ? engine_dialog_get(e, did) : NULL;
                if (d && d->d->state == DIALOG_EARLY)
                    engine_dialog_remove(e, d, 0);
                push_msg_event(e, ENGINE_EV_CANCELLED, tid, id, did, src, msg);
                sipbuf_free(&b);
                return;
            }
        }
        sipbuf_free(&b);
    }
    sipmsg_free(msg);
}

static void on_ack(struct engine *e, struct transport *tp, struct sipmsg *msg, const struct sip_via *via,
                   const struct netaddr *src)
{
    char key[KEY_MAX];
    long kl = txn_key('S', msg, via, sip_str_c("INVITE"), key, sizeof(key));
    struct etxn *inv = kl > 0 ? strmap_get(&e->txn_by_key, key, (size_t)kl) : NULL;
    if (inv && inv->kind == TXN_IST && txn_last_status(inv->t) >= 300) {
        struct txn_out out = {0};
        if (txn_server_on_ack(inv->t, engine_now_ms(), &out) == 0)
            engine_txn_outputs(e, inv, &out);
        sipmsg_free(msg); /* ACK for a non-2xx final is hop-by-hop: absorbed */
        return;
    }
    struct edialog *d = engine_dialog_find(e, hdr_value(msg, SIP_HDR_CALL_ID), tag_of(msg, SIP_HDR_TO),
                                           tag_of(msg, SIP_HDR_FROM));
    uint32_t did = 0;
    if (d) {
        did = d->id;
        d->peer = *src;
        struct sip_cseq cq;
        if (d->awaiting_ack && sip_cseq_parse(hdr_value(msg, SIP_HDR_CSEQ), &cq, NULL) == 0 &&
            cq.num == d->resp2xx_cseq) {
            d->awaiting_ack = 0;
            engine_schedule_dialog(e, d);
        }
    }
    push_msg_event(e, ENGINE_EV_REQUEST, tp->id, 0, did, src, msg);
}

static void on_request(struct engine *e, struct transport *tp, struct sipmsg *msg, const struct netaddr *src)
{
    struct sip_via via;
    struct sip_error err;
    if (sipmsg_top_via(msg, &via, &err) < 0) {
        char info[160];
        snprintf(info, sizeof(info), "request without a usable Via dropped: %.80s", err.reason);
        e->parse_errors++;
        push_simple(e, ENGINE_EV_PARSE_ERROR, tp->id, 0, 0, src, info);
        sipmsg_free(msg);
        return;
    }
    struct sip_cseq cq;
    if (sip_cseq_parse(hdr_value(msg, SIP_HDR_CSEQ), &cq, NULL) < 0 || hdr_value(msg, SIP_HDR_CALL_ID).len == 0 ||
        hdr_value(msg, SIP_HDR_FROM).len == 0 || hdr_value(msg, SIP_HDR_TO).len == 0) {
        respond_stateless(e, tp, msg, &via, src, 400, NULL);
        e->parse_errors++;
        push_simple(e, ENGINE_EV_PARSE_ERROR, tp->id, 0, 0, src,
                    "request without a valid CSeq, Call-ID, From or To: answered 400");
        sipmsg_free(msg);
        return;
    }
    if (tp->kind != TP_UDP)
        engine_conn_alias(e, tp, src, &via); /* RFC 5923 */
    if (sip_str_eqc(msg->method, "ACK")) {
        on_ack(e, tp, msg, &via, src);
        return;
    }
    if (sip_str_eqc(msg->method, "CANCEL")) {
        on_cancel(e, tp, msg, &via, src);
        return;
    }
    char key[KEY_MAX];
    long kl = txn_key('S', msg, &via, msg->method, key, sizeof(key));
    if (kl < 0) {
        sipmsg_free(msg);
        return;
    }
    uint64_t now = engine_now_ms();
    struct etxn *x = strmap_get(&e->txn_by_key, key, (size_t)kl);
    if (x) {
        struct txn_out out = {0};
        if (txn_server_on_retransmit(x->t, now, &out) == 0)
            engine_txn_outputs(e, x, &out);
        sipmsg_free(msg);
        return;
    }
    int is_invite = sip_str_eqc(msg->method, "INVITE");
    struct sip_str to_tag = tag_of(msg, SIP_HDR_TO);
    struct edialog *d = NULL;
    if (to_tag.len) {
        d = engine_dialog_find(e, hdr_value(msg, SIP_HDR_CALL_ID), to_tag, tag_of(msg, SIP_HDR_FROM));
        if (d == NULL && sip_str_eqc(msg->method, "NOTIFY")) /* NOTIFY before the 2xx to our SUBSCRIBE/REFER */
            d = engine_dialog_from_notify(e, tp->id, msg, src);
        if (d == NULL) {
            respond_stateless(e, tp, msg, &via, src, 481, NULL);
            sipmsg_free(msg);
            return;
        }
        if (d->d->remote_cseq && cq.num <= d->d->remote_cseq) {
            respond_stateless(e, tp, msg, &via, src, 500, NULL);
            sipmsg_free(msg);
            return;
        }
        d->d->remote_cseq = cq.num;
        d->peer = *src;
        if (is_invite || sip_str_eqc(msg->method, "UPDATE"))
            (void)dialog_refresh_target(d->d, msg);
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        sipmsg_free(msg);
        return;
    }
    x->kind = is_invite ? TXN_IST : TXN_NIST;
    x->t = txn_server_new(x->kind, engine_txn_cfg(e, tp), now);
    x->key = malloc((size_t)kl);
    x->req = msg;
    if (x->t == NULL || x->key == NULL) {
        engine_etxn_destroy(x);
        return;
    }
    memcpy(x->key, key, (size_t)kl);
    x->klen = (size_t)kl;
    x->transport_id = tp->id;
    response_dest(tp, &via, src, &x->peer);
    x->dialog_id = d ? d->id : 0;
    if (engine_txn_insert(e, x) < 0) {
        engine_etxn_destroy(x);
        return;
    }
    int is_prack = sip_str_eqc(msg->method, "PRACK");
    uint32_t xid = is_prack ? 0 : x->id, did = x->dialog_id;
    /* The event needs its own copy of the request (the transaction keeps msg and may free it below), unless the
     * fast path swallows the event: it sees the request first, borrowed (a summary-mode call's INVITE, ACK and
     * BYE are never copied). */
    struct sipmsg *copy = NULL;
    if (!fast_swallows(e, ENGINE_EV_REQUEST, tp->id, xid, did, msg))
        copy = reparse(msg);
    if (is_prack) {
        /* RFC 3262: the engine answers the PRACK (200 when it matches, else 481); the user sees it like an ACK */
        engine_prack_on_prack(e, x, d);
    }
    /* 100 Trying at once (RFC 3261 17.2.1): the user may take longer than 200 ms; not when the fast path
     * sends its 180 or 200 before this loop iteration ends (it said so while it looked at the request) */
    int fast_now = e->fast_responds_now;
    e->fast_responds_now = 0;
    if (is_invite && !fast_now) {
        struct sipbuf b;
        sipbuf_init(&b);
        if (engine_build_response(e, msg, &x->peer, 100, NULL, NULL, 0, NULL, 0, NULL, 0, &b) == 0) {
            struct txn_out out = {0};
            if (txn_server_respond(x->t, 100, b.p, b.len, now, &out) == 0)
                engine_txn_outputs(e, x, &out);
        }
        sipbuf_free(&b);
    }
    if (copy)
        queue_msg_event(e, ENGINE_EV_REQUEST, tp->id, xid, did, src, copy);
}

static void ack_for_2xx(struct engine *e, struct etxn *x, struct edialog *d, const struct sipmsg *resp,
                        const struct netaddr *src)
{
    struct transport *tp = engine_transport(e, x->transport_id);
    if (tp == NULL)
        return;
    struct sip_cseq cq;
    if (sip_cseq_parse(hdr_value(resp, SIP_HDR_CSEQ), &cq, NULL) < 0)
        return;
    char via[256];
    engine_make_via(e, tp, via, sizeof(via));
    struct sipbuf b;
    sipbuf_init(&b);
    if (dialog_build_request(d->d, "ACK", cq.num, via, NULL, NULL, 0, NULL, &b) < 0) {
        sipbuf_free(&b);
        return;
    }
    char host[64];
    uint16_t port;
    struct netaddr dst;
    if (dialog_next_hop(d->d, host, sizeof(host), &port) < 0 || netaddr_set(&dst, host, port) < 0)
        dst = *src;
    free(d->ack);
    d->ack = b.p; /* the dialog takes the buffer */
    d->ack_len = b.len;
    d->ack_cseq = cq.num;
    d->ack_dest = dst;
    send_or_report(e, x->transport_id, &dst, (struct sip_str){d->ack, d->ack_len}, x->id, d->id);
}

static void drop_early_dialogs(struct engine *e, struct sip_str call_id, struct sip_str local_tag)
{
    size_t i = 0;
    long s;
    while ((s = strmap_next(&e->dialogs, &i)) >= 0) {
        struct edialog *d = e->dialogs.s[s].val;
        if (d->d->state == DIALOG_EARLY && sip_str_eqc(call_id, d->d->call_id) &&
            sip_str_eqc(local_tag, d->d->local_tag)) {
            engine_dialog_remove(e, d, 0);
            i = 0; /* the table changed: start over */
        }
    }
}

static void on_response(struct engine *e, struct transport *tp, struct sipmsg *msg, const struct netaddr *src)
{
    struct sip_via via;
    struct sip_cseq cq;
    if (sipmsg_top_via(msg, &via, NULL) < 0 || sip_cseq_parse(hdr_value(msg, SIP_HDR_CSEQ), &cq, NULL) < 0) {
        e->parse_errors++;
        push_simple(e, ENGINE_EV_PARSE_ERROR, tp->id, 0, 0, src, "response without a usable Via or CSeq dropped");
        sipmsg_free(msg);
        return;
    }
    char key[KEY_MAX];
    long kl = txn_key('C', msg, &via, cq.method, key, sizeof(key));
    struct etxn *x = kl > 0 ? strmap_get(&e->txn_by_key, key, (size_t)kl) : NULL;
    struct sip_str call_id = hdr_value(msg, SIP_HDR_CALL_ID);
    struct sip_str ltag = tag_of(msg, SIP_HDR_FROM), rtag = tag_of(msg, SIP_HDR_TO);
    if (x == NULL) {
        /* a 2xx retransmitted after the INVITE transaction ended: repeat our ACK */
        if (msg->status >= 200 && msg->status < 300 && sip_str_eqc(cq.method, "INVITE")) {
            struct edialog *d = engine_dialog_find(e, call_id, ltag, rtag);
            if (d && d->ack && d->ack_cseq == cq.num)
                send_or_report(e, d->transport_id, &d->ack_dest, (struct sip_str){d->ack, d->ack_len}, 0, d->id);
        }
        sipmsg_free(msg);
        return;
    }
    uint64_t now = engine_now_ms();
    struct txn_out out = {0};
    if (txn_client_on_response(x->t, msg, now, &out) < 0) {
        sipmsg_free(msg);
        return;
    }
    uint32_t did = x->dialog_id;
    int deliver = out.deliver;
    if (deliver && x->kind == TXN_ICT && msg->status > 100 && msg->status < 300 && rtag.len && did == 0) {
        struct edialog *d = engine_dialog_find(e, call_id, ltag, rtag);
        int is_2xx = msg->status >= 200;
        if (d == NULL) {
            struct dialog *dl = NULL;
            if (dialog_new_uac(x->req, msg, &dl) == 0 && engine_dialog_add(e, dl, x->transport_id, src, &d) < 0) {
                dialog_free(dl);
                d = NULL;
            }
        } else if (is_2xx) {
            if (d->d->state == DIALOG_CONFIRMED && d->ack && d->ack_cseq == cq.num) {
                /* retransmitted 2xx in the Accepted state: repeat the ACK, nothing new for the user */
                send_or_report(e, d->transport_id, &d->ack_dest, (struct sip_str){d->ack, d->ack_len}, x->id, d->id);
                deliver = 0;
            } else {
                (void)dialog_confirm_uac(d->d, msg);
            }
        }
        if (d) {
            d->peer = *src;
            if (is_2xx && deliver)
                ack_for_2xx(e, x, d, msg, src);
            if (!is_2xx && deliver)
                deliver = engine_prack_uac_on_1xx(e, x, d, msg);
            did = d->id;
        }
    } else if (deliver && x->kind == TXN_ICT && did && msg->status > 100 && msg->status < 200) {
        /* a provisional to a re-INVITE: PRACKed in the dialog when it is reliable (RFC 3262 applies to any INVITE) */
        struct edialog *d = engine_dialog_get(e, did);
        if (d)
            deliver = engine_prack_uac_on_1xx(e, x, d, msg);
    } else if (deliver && x->kind == TXN_ICT && did && msg->status >= 200 && msg->status < 300) {
        /* 2xx to a re-INVITE: ACK inside the existing dialog */
        struct edialog *d = engine_dialog_get(e, did);
        if (d) {
            if (d->ack && d->ack_cseq == cq.num) {
                send_or_report(e, d->transport_id, &d->ack_dest, (struct sip_str){d->ack, d->ack_len}, x->id, d->id);
                deliver = 0;
            } else {
                (void)dialog_refresh_target(d->d, msg);
                ack_for_2xx(e, x, d, msg, src);
            }
        }
    }
    if (deliver && x->kind == TXN_ICT && msg->status >= 300 && x->dialog_id == 0)
        drop_early_dialogs(e, call_id, ltag);
    /* SUBSCRIBE/REFER: the 2xx creates the dialog or adds a subscription usage (engine_sub.c) */
    if (deliver && x->kind == TXN_NICT && msg->status >= 200 && msg->status < 300 && engine_is_sub_method(cq.method))
        did = engine_sub_on_2xx(e, x, msg, src);
    /* our NOTIFY with Subscription-State: terminated answered (except a challenge): that subscription ended */
    int sub_done = deliver && x->kind == TXN_NICT && msg->status >= 200 && msg->status != 401 &&
                   msg->status != 407 && engine_notify_terminates(x->req);
    /* a BYE ends its dialog on any final response except a challenge: 401/407 keep it for the retry */
    int bye_done = deliver && x->kind == TXN_NICT && msg->status >= 200 && msg->status != 401 &&
                   msg->status != 407 && sip_str_eqc(cq.method, "BYE");
    uint32_t xid = x->id, tid = tp->id;
    if (deliver)
        push_msg_event(e, ENGINE_EV_RESPONSE, tid, xid, did, src, msg);
    else
        sipmsg_free(msg);
    engine_txn_outputs(e, x, &out); /* may free x */
    if ((bye_done || sub_done) && did) {
        struct edialog *d = engine_dialog_get(e, did);
        if (d && bye_done)
            engine_dialog_bye_done(e, d);
        else if (d)
            engine_dialog_sub_ended(e, d);
    }
}

void engine_on_datagram(struct engine *e, struct transport *tp, const char *data, size_t len,
                        const struct netaddr *src)
{
    /* CRLF keep-alives (RFC 5626) are not messages */
    size_t i = 0;
    while (i < len && (data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i == len)
        return;
    if (e->trace != NULL)
        engine_trace_record(e, tp->id, 0, src, data, len);
    struct sipmsg *msg = NULL;
    struct sip_error err;
    memset(&err, 0, sizeof(err));
    if (sipmsg_parse(data, len, &(struct sipmsg_limits){.flags = SIPMSG_SYNTAX_ONLY}, &msg, &err) < 0) {
        e->parse_errors++;
        char info[160];
        snprintf(info, sizeof(info), "unparseable datagram (%zu bytes): %.80s at byte %zu", len, err.reason, err.offset);
        push_simple(e, ENGINE_EV_PARSE_ERROR, tp->id, 0, 0, src, info);
        return;
    }
    if (msg->is_request)
        on_request(e, tp, msg, src);
    else
        on_response(e, tp, msg, src);
}

void engine_on_timer(struct engine *e, const struct timer_entry *te, uint64_t now)
{
    if (te->kind == TK_TXN) {
        struct etxn *x = engine_txn_get(e, te->id);
        if (x == NULL || x->gen != te->gen)
            return;
        struct txn_out out = {0};
        if (txn_on_time(x->t, now, &out) == 0)
            engine_txn_outputs(e, x, &out);
        else
            engine_schedule_txn(e, x);
        return;
    }
    if (te->kind == TK_PRACK) {
        engine_prack_on_timer(e, te, now);
        return;
    }
    if (te->kind == TK_DLG) {
        struct edialog *d = engine_dialog_get(e, te->id);
        if (d == NULL || d->gen != te->gen || !d->awaiting_ack)
            return;
        if (now >= d->rtx_giveup) {
            d->awaiting_ack = 0;
            push_simple(e, ENGINE_EV_TIMEOUT, d->transport_id, 0, d->id, &d->resp2xx_dest,
                        "no ACK for the 2xx (Timer H)");
            return;
        }
        e->retransmissions++;
        send_or_report(e, d->transport_id, &d->resp2xx_dest, (struct sip_str){d->resp2xx, d->resp2xx_len}, 0, d->id);
        d->rtx_interval = d->rtx_interval * 2 > e->cfg.t2_ms ? e->cfg.t2_ms : d->rtx_interval * 2;
        d->rtx_next = now + d->rtx_interval;
        if (d->rtx_next > d->rtx_giveup)
            d->rtx_next = d->rtx_giveup;
        engine_schedule_dialog(e, d);
    }
}
