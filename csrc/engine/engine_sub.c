/* Subscription dialogs (RFC 6665) and dialog usages (RFC 5057).
 *
 * A SUBSCRIBE or REFER creates a dialog with its 2xx, or, on the subscriber side, with a NOTIFY that arrives
 * before the 2xx (RFC 6665 4.1.2.4).  An INVITE dialog can also carry subscriptions (a REFER inside a call):
 * the dialog counts its subscription usages and goes away when the last usage ends: a BYE for the INVITE
 * usage, a NOTIFY with Subscription-State: terminated (answered or sent) for a subscription.  A REFER answered
 * with Refer-Sub: false (RFC 4488) creates no subscription. */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct sip_str hdr(const struct sipmsg *m, enum sip_hdr_id id, const char *name)
{
    size_t p = 0;
    const struct sip_hdr *h = sipmsg_find(m, id, name, &p);
    return h ? h->value : (struct sip_str){NULL, 0};
}

static struct sip_str trim(struct sip_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* The first token of a header value (before ';'), and the parameters after it. */
static struct sip_str first_token(struct sip_str v, struct sip_str *params)
{
    size_t i = 0;
    while (i < v.len && v.p[i] != ';')
        i++;
    if (params)
        *params = (struct sip_str){v.p + i, v.len - i};
    return trim((struct sip_str){v.p, i});
}

int engine_is_sub_method(struct sip_str method)
{
    return sip_str_eqc(method, "SUBSCRIBE") || sip_str_eqc(method, "REFER");
}

int engine_notify_terminates(const struct sipmsg *m)
{
    if (m == NULL || !m->is_request || !sip_str_eqc(m->method, "NOTIFY"))
        return 0;
    struct sip_str v = hdr(m, SIP_HDR_OTHER, "Subscription-State");
    return v.len && sip_str_ieqc(first_token(v, NULL), "terminated");
}

int engine_msg_refer_sub_false(const struct sipmsg *m)
{
    struct sip_str v = hdr(m, SIP_HDR_OTHER, "Refer-Sub");
    return v.len && sip_str_ieqc(first_token(v, NULL), "false");
}

int engine_hdrs_refer_sub_false(const struct engine_hdr *hdrs, size_t nhdrs)
{
    for (size_t i = 0; i < nhdrs; i++)
        if (strcasecmp(hdrs[i].name, "Refer-Sub") == 0 &&
            sip_str_ieqc(first_token(sip_str_c(hdrs[i].value), NULL), "false"))
            return 1;
    return 0;
}

void engine_dialog_bye_done(struct engine *e, struct edialog *d)
{
    if (d->subs > 0) {
        d->invite_ended = 1; /* the subscriptions keep the dialog (RFC 5057 5.1) */
        return;
    }
    engine_dialog_remove(e, d, 1);
}

void engine_dialog_sub_ended(struct engine *e, struct edialog *d)
{
    if (d->subs > 0)
        d->subs--;
    if (d->subs == 0 && (d->sub_only || d->invite_ended))
        engine_dialog_remove(e, d, 1);
}

/* Event package of a message: its type and id parameter; REFER implies "refer" (RFC 3515 2.4.4). */
static void event_of(const struct sipmsg *m, struct sip_str *type, struct sip_str *id)
{
    struct sip_str params = {NULL, 0};
    *id = (struct sip_str){NULL, 0};
    struct sip_str v = hdr(m, SIP_HDR_EVENT, NULL);
    if (v.len == 0 && m->is_request && sip_str_eqc(m->method, "REFER")) {
        *type = sip_str_c("refer");
        return;
    }
    *type = first_token(v, &params);
    (void)sip_param_find(params, "id", id);
}

static struct sip_str tag_of(const struct sipmsg *m, enum sip_hdr_id id)
{
    struct sip_nameaddr na;
    struct sip_str v = hdr(m, id, NULL);
    if (v.len == 0 || sip_nameaddr_parse(v, &na, NULL) < 0)
        return (struct sip_str){NULL, 0};
    return na.tag;
}

static int str_eq_opt(struct sip_str a, struct sip_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

struct edialog *engine_dialog_from_notify(struct engine *e, uint32_t transport_id, const struct sipmsg *notify,
                                          const struct netaddr *src)
{
    struct sip_str call_id = hdr(notify, SIP_HDR_CALL_ID, NULL), our_tag = tag_of(notify, SIP_HDR_TO);
    struct sip_str ntype, nid;
    event_of(notify, &ntype, &nid);
    if (call_id.len == 0 || our_tag.len == 0 || ntype.len == 0)
        return NULL;
    size_t i = 0;
    long s;
    while ((s = strmap_next(&e->txns, &i)) >= 0) {
        struct etxn *x = e->txns.s[s].val;
        if (x->kind != TXN_NICT || x->dialog_id != 0 || x->req == NULL || !engine_is_sub_method(x->req->method))
            continue;
        if (!sip_str_eq(hdr(x->req, SIP_HDR_CALL_ID, NULL), call_id) || !sip_str_eq(tag_of(x->req, SIP_HDR_FROM), our_tag))
            continue;
        struct sip_str stype, sid;
        event_of(x->req, &stype, &sid);
        if (!sip_str_ieq(stype, ntype) || !str_eq_opt(sid, nid))
            continue;
        struct dialog *dl = NULL;
        struct edialog *d = NULL;
        if (dialog_new_notify(x->req, notify, &dl) < 0)
            return NULL;
        if (engine_dialog_add(e, dl, transport_id, src, &d) < 0) {
            dialog_free(dl);
            return NULL;
        }
        d->sub_only = 1;
        d->subs = 1;
        return d;
    }
    return NULL;
}

uint32_t engine_sub_on_2xx(struct engine *e, struct etxn *x, const struct sipmsg *resp, const struct netaddr *src)
{
    int no_sub = sip_str_eqc(x->req->method, "REFER") && engine_msg_refer_sub_false(resp);
    if (x->dialog_id) {
        /* inside a dialog: a REFER adds a subscription usage; a SUBSCRIBE refreshes one */
        struct edialog *d = engine_dialog_get(e, x->dialog_id);
        if (d && !no_sub && sip_str_eqc(x->req->method, "REFER"))
            d->subs++;
        return x->dialog_id;
    }
    struct sip_str call_id = hdr(resp, SIP_HDR_CALL_ID, NULL);
    struct sip_str ltag = tag_of(resp, SIP_HDR_FROM), rtag = tag_of(resp, SIP_HDR_TO);
    if (rtag.len == 0 || no_sub)
        return 0;
    struct edialog *d = engine_dialog_find(e, call_id, ltag, rtag);
    if (d == NULL) {
        struct dialog *dl = NULL;
        if (dialog_new_uac(x->req, resp, &dl) < 0)
            return 0;
        if (engine_dialog_add(e, dl, x->transport_id, src, &d) < 0) {
            dialog_free(dl);
            return 0;
        }
        d->sub_only = 1;
        d->subs = 1;
    } else {
        (void)dialog_refresh_target(d->d, resp);
    }
    d->peer = *src;
    x->dialog_id = d->id;
    return d->id;
}
