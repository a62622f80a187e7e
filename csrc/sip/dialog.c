#include "dialog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dup_str(struct sip_str s)
{
    char *p = malloc(s.len + 1);
    if (p == NULL)
        return NULL;
    if (s.len)
        memcpy(p, s.p, s.len);
    p[s.len] = '\0';
    return p;
}

/* Header value without a ;tag=... parameter (the rest kept). */
static char *dup_without_tag(struct sip_str v)
{
    struct sipbuf b;
    sipbuf_init(&b);
    size_t i = 0;
    int inq = 0, inang = 0;
    while (i < v.len) {
        char c = v.p[i];
        if (c == '"' && !inang)
            inq = !inq;
        else if (c == '\\' && inq && i + 1 < v.len) {
            sipbuf_add(&b, v.p + i, 2);
            i += 2;
            continue;
        } else if (!inq && c == '<')
            inang = 1;
        else if (!inq && c == '>')
            inang = 0;
        if (!inq && !inang && c == ';') {
            size_t j = i + 1;
            while (j < v.len && (v.p[j] == ' ' || v.p[j] == '\t'))
                j++;
            if (v.len - j >= 4 && strncasecmp(v.p + j, "tag", 3) == 0) {
                size_t k = j + 3;
                while (k < v.len && (v.p[k] == ' ' || v.p[k] == '\t'))
                    k++;
                if (k < v.len && v.p[k] == '=') {
                    k++;
                    while (k < v.len && v.p[k] != ';')
                        k++;
                    i = k;
                    continue;
                }
            }
        }
        sipbuf_add(&b, &c, 1);
        i++;
    }
    while (b.len && (b.p[b.len - 1] == ' ' || b.p[b.len - 1] == '\t'))
        b.len--;
    sipbuf_add(&b, "", 1);
    if (b.err) {
        sipbuf_free(&b);
        return NULL;
    }
    return b.p; /* ownership of the buffer moves to the caller */
}

static int contact_uri(const struct sipmsg *m, char **out)
{
    size_t pos = 0;
    const struct sip_hdr *h = sipmsg_find(m, SIP_HDR_CONTACT, NULL, &pos);
    if (h == NULL)
        return -ENOENT;
    struct sip_str rest = h->value, elem;
    if (sip_list_next(&rest, &elem) < 0)
        return -EBADMSG;
    struct sip_nameaddr na;
    if (sip_nameaddr_parse(elem, &na, NULL) < 0)
        return -EBADMSG;
    char *u = dup_str(na.uri);
    if (u == NULL)
        return -ENOMEM;
    *out = u;
    return 0;
}

/* Collect Record-Route elements in order (reverse=1 for the UAC). */
static int route_set_from(const struct sipmsg *m, int reverse, char ***out, size_t *n)
{
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    size_t pos = 0;
    const struct sip_hdr *h;
    while ((h = sipmsg_find(m, SIP_HDR_RECORD_ROUTE, NULL, &pos)) != NULL) {
        struct sip_str rest = h->value, elem;
        while (sip_list_next(&rest, &elem) == 0) {
            if (cnt == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                char **nv = realloc(v, ncap * sizeof(*nv));
                if (nv == NULL)
                    goto nomem;
                v = nv;
                cap = ncap;
            }
            if ((v[cnt] = dup_str(elem)) == NULL)
                goto nomem;
            cnt++;
        }
    }
    if (reverse) {
        for (size_t i = 0; i < cnt / 2; i++) {
            char *t = v[i];
            v[i] = v[cnt - 1 - i];
            v[cnt - 1 - i] = t;
        }
    }
    *out = v;
    *n = cnt;
    return 0;
nomem:
    for (size_t i = 0; i < cnt; i++)
        free(v[i]);
    free(v);
    return -ENOMEM;
}

static void free_routes(struct dialog *d)
{
    for (size_t i = 0; i < d->nroute; i++)
        free(d->route[i]);
    free(d->route);
    d->route = NULL;
    d->nroute = 0;
}

void dialog_free(struct dialog *d)
{
    if (d == NULL)
        return;
    free(d->call_id);
    free(d->local_tag);
    free(d->remote_tag);
    free(d->local_uri);
    free(d->remote_uri);
    free(d->remote_target);
    free_routes(d);
    free(d);
}

static int common(const struct sipmsg *req, const struct sip_hdr **from, const struct sip_hdr **to,
                  const struct sip_hdr **cid, struct sip_cseq *cseq)
{
    size_t p = 0;
    *from = sipmsg_find(req, SIP_HDR_FROM, NULL, &p);
    p = 0;
    *to = sipmsg_find(req, SIP_HDR_TO, NULL, &p);
    p = 0;
    *cid = sipmsg_find(req, SIP_HDR_CALL_ID, NULL, &p);
    p = 0;
    const struct sip_hdr *cs = sipmsg_find(req, SIP_HDR_CSEQ, NULL, &p);
    if (!*from || !*to || !*cid || !cs)
        return -EBADMSG;
    if (sip_cseq_parse(cs->value, cseq, NULL) < 0)
        return -EBADMSG;
    return 0;
}

int dialog_new_uac(const struct sipmsg *req, const struct sipmsg *resp, struct dialog **out)
{
    const struct sip_hdr *from, *to, *cid, *rto;
    struct sip_cseq cseq;
    if (common(req, &from, &to, &cid, &cseq) < 0)
        return -EBADMSG;
    size_t p = 0;
    rto = sipmsg_find(resp, SIP_HDR_TO, NULL, &p);
    struct sip_nameaddr fna, tna;
    if (rto == NULL || sip_nameaddr_parse(from->value, &fna, NULL) < 0 || sip_nameaddr_parse(rto->value, &tna, NULL) < 0)
        return -EBADMSG;
    if (tna.tag.len == 0 || fna.tag.len == 0)
        return -EBADMSG;
    struct dialog *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->is_uac = 1;
    d->state = (resp->status >= 200) ? DIALOG_CONFIRMED : DIALOG_EARLY;
    d->call_id = dup_str(cid->value);
    d->local_tag = dup_str(fna.tag);
    d->remote_tag = dup_str(tna.tag);
    d->local_uri = dup_without_tag(from->value);
    d->remote_uri = dup_without_tag(to->value);
    d->local_cseq = cseq.num;
    if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri)
        goto nomem;
    int rc = contact_uri(resp, &d->remote_target);
    if (rc == -ENOMEM)
        goto nomem;
    if (rc < 0) {
        /* no Contact (a 1xx may lack one): fall back to the Request-URI */
        if ((d->remote_target = dup_str(req->uri)) == NULL)
            goto nomem;
    }
    if (route_set_from(resp, 1, &d->route, &d->nroute) < 0)
        goto nomem;
    *out = d;
    return 0;
nomem:
    dialog_free(d);
    return -ENOMEM;
}

int dialog_new_uas(const struct sipmsg *req, const char *local_tag, struct dialog **out)
{
    const struct sip_hdr *from, *to, *cid;
    struct sip_cseq cseq;
    if (local_tag == NULL || common(req, &from, &to, &cid, &cseq) < 0)
        return -EBADMSG;
    struct sip_nameaddr fna;
    if (sip_nameaddr_parse(from->value, &fna, NULL) < 0)
        return -EBADMSG;
    struct dialog *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->is_uac = 0;
    d->state = DIALOG_EARLY;
    d->call_id = dup_str(cid->value);
    d->local_tag = dup_str(sip_str_c(local_tag));
    d->remote_tag = dup_str(fna.tag);
    d->local_uri = dup_without_tag(to->value);
    d->remote_uri = dup_without_tag(from->value);
    d->remote_cseq = cseq.num;
    d->local_cseq = 0;
    if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri)
        goto nomem;
    int rc = contact_uri(req, &d->remote_target);
    if (rc == -ENOMEM)
        goto nomem;
    if (rc < 0) {
        dialog_free(d);
        return -EBADMSG; /* an INVITE must carry a Contact */
    }
    if (route_set_from(req, 0, &d->route, &d->nroute) < 0)
        goto nomem;
    *out = d;
    return 0;
nomem:
    dialog_free(d);
    return -ENOMEM;
}

int dialog_new_notify(const struct sipmsg *sub, const struct sipmsg *notify, struct dialog **out)
{
    const struct sip_hdr *from, *to, *cid, *nfrom;
    struct sip_cseq cseq;
    if (common(sub, &from, &to, &cid, &cseq) < 0)
        return -EBADMSG;
    size_t p = 0;
    nfrom = sipmsg_find(notify, SIP_HDR_FROM, NULL, &p);
    struct sip_nameaddr fna, nna;
    if (nfrom == NULL || sip_nameaddr_parse(from->value, &fna, NULL) < 0 ||
        sip_nameaddr_parse(nfrom->value, &nna, NULL) < 0 || fna.tag.len == 0 || nna.tag.len == 0)
        return -EBADMSG;
    struct dialog *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->is_uac = 1;
    d->state = DIALOG_CONFIRMED;
    d->call_id = dup_str(cid->value);
    d->local_tag = dup_str(fna.tag);
    d->remote_tag = dup_str(nna.tag);
    d->local_uri = dup_without_tag(from->value);
    d->remote_uri = dup_without_tag(to->value);
    d->local_cseq = cseq.num;
    if (!d->call_id || !d->local_tag || !d->remote_tag || !d->local_uri || !d->remote_uri)
        goto nomem;
    int rc = contact_uri(notify, &d->remote_target);
    if (rc == -ENOMEM)
        goto nomem;
    if (rc < 0) {
        dialog_free(d);
        return -EBADMSG; /* a NOTIFY must carry a Contact */
    }
    if (route_set_from(notify, 0, &d->route, &d->nroute) < 0)
        goto nomem;
    *out = d;
    return 0;
nomem:
    dialog_free(d);
    return -ENOMEM;
}

int dialog_refresh_target(struct dialog *d, const struct sipmsg *msg)
{
    char *t = NULL;
    int rc = contact_uri(msg, &t);
    if (rc < 0)
        return rc;
    free(d->remote_target);
    d->remote_target = t;
    return 0;
}

int dialog_confirm_uac(struct dialog *d, const struct sipmsg *resp)
{
    char **r = NULL;
    size_t n = 0;
    if (route_set_from(resp, 1, &r, &n) < 0)
        return -ENOMEM;
    free_routes(d);
    d->route = r;
    d->nroute = n;
    (void)dialog_refresh_target(d, resp);
    d->state = DIALOG_CONFIRMED;
    return 0;
}

static int route_is_loose(const char *route)
{
    struct sip_nameaddr na;
    struct sip_uri u;
    struct sip_str v;
    if (sip_nameaddr_parse(sip_str_c(route), &na, NULL) < 0 || sip_uri_parse(na.uri, &u, NULL) < 0)
        return 1;
    return sip_param_find(u.params, "lr", &v) == 0;
}

long dialog_build_request(struct dialog *d, const char *method, uint32_t cseq, const char *via, const char *extra,
                          const char *body, size_t blen, const char *content_type, struct sipbuf *out)
{
    if (d == NULL || method == NULL || via == NULL || out == NULL || (blen && body == NULL))
        return -EINVAL;
    if (cseq == 0) {
        if (d->local_cseq >= 0x7fffffffU)
            return -ERANGE;
        cseq = ++d->local_cseq;
    }
    const char *ruri = d->remote_target;
    size_t first_route = 0;
    int strict = d->nroute > 0 && !route_is_loose(d->route[0]);
    char *strict_uri = NULL;
    if (strict) {
        struct sip_nameaddr na;
        if (sip_nameaddr_parse(sip_str_c(d->route[0]), &na, NULL) < 0)
            return -EBADMSG;
        strict_uri = malloc(na.uri.len + 1);
        if (strict_uri == NULL)
            return -ENOMEM;
        memcpy(strict_uri, na.uri.p, na.uri.len);
        strict_uri[na.uri.len] = '\0';
        ruri = strict_uri;
        first_route = 1;
    }
    sipbuf_addf(out, "%s %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\n", method, ruri, via);
    for (size_t i = first_route; i < d->nroute; i++)
        sipbuf_addf(out, "Route: %s\r\n", d->route[i]);
    if (strict)
        sipbuf_addf(out, "Route: <%s>\r\n", d->remote_target);
    sipbuf_addf(out, "From: %s;tag=%s\r\n", d->local_uri, d->local_tag);
    sipbuf_addf(out, "To: %s;tag=%s\r\n", d->remote_uri, d->remote_tag);
    sipbuf_addf(out, "Call-ID: %s\r\nCSeq: %u %s\r\n", d->call_id, cseq, method);
    if (extra)
        sipbuf_addc(out, extra);
    if (blen && content_type)
        sipbuf_addf(out, "Content-Type: %s\r\n", content_type);
    sipbuf_addf(out, "Content-Length: %zu\r\n\r\n", blen);
    if (blen)
        sipbuf_add(out, body, blen);
    free(strict_uri);
    if (out->err)
        return out->err;
    return (long)cseq;
}

int dialog_next_hop(const struct dialog *d, char *host, size_t hostlen, uint16_t *port)
{
    struct sip_str target;
    struct sip_nameaddr na;
    if (d->nroute > 0) {
        if (sip_nameaddr_parse(sip_str_c(d->route[0]), &na, NULL) < 0)
            return -EINVAL;
        target = na.uri;
    } else {
        target = sip_str_c(d->remote_target);
    }
    struct sip_uri u;
    if (sip_uri_parse(target, &u, NULL) < 0 || u.host.len == 0 || u.host.len >= hostlen)
        return -EINVAL;
    memcpy(host, u.host.p, u.host.len);
    host[u.host.len] = '\0';
    *port = (uint16_t)(u.port ? u.port : (sip_str_ieqc(u.scheme, "sips") ? 5061 : 5060));
    return 0;
}

long dialog_key(struct sip_str call_id, struct sip_str local_tag, struct sip_str remote_tag, char *key, size_t keylen)
{
    size_t need = call_id.len + local_tag.len + remote_tag.len + 2;
    if (need > keylen)
        return -E2BIG;
    size_t o = 0;
    if (call_id.len)
        memcpy(key + o, call_id.p, call_id.len);
    o += call_id.len;
    key[o++] = '\0';
    if (local_tag.len)
        memcpy(key + o, local_tag.p, local_tag.len);
    o += local_tag.len;
    key[o++] = '\0';
    if (remote_tag.len)
        memcpy(key + o, remote_tag.p, remote_tag.len);
    o += remote_tag.len;
    return (long)o;
}
