/* RFC 3261 checks on an indexed message: what a parser must reject beyond the line syntax (sections 7, 8.1.1,
 * 20 and RFC 4475), and the tolerant acceptances RFC 4475 allows, recorded as warnings on the message. */
#include <errno.h>
#include <stdint.h>

#include "sip/sip_lex.h"
#include "sip/sipmsg.h"

static size_t off_of(const struct sipmsg *m, const char *p)
{
    return (size_t)(p - m->buf);
}

static void warn(struct sipmsg *m, const char *p, const char *what)
{
    if (m->nwarnings < SIPMSG_MAX_WARNINGS)
        m->warnings[m->nwarnings++] = (struct sip_warning){off_of(m, p), what};
}

/* A view error's offset is relative to the slice it was given; make it relative to the message. */
static int rebase(const struct sipmsg *m, int rc, struct sip_str slice, const char *hdr, struct sip_error *err)
{
    if (err) {
        char inner[sizeof err->reason];
        memcpy(inner, err->reason, sizeof inner);
        sip_error_set(err, rc, off_of(m, slice.p) + err->offset, "%s: %s", hdr, inner);
    }
    return rc;
}

/* ;name[=value] parameters (the slice after the first ';'): every name a non-empty token (RFC 3261
 * generic-param), values token, host or quoted-string (not checked beyond the quotes). One pass. */
static int check_params(const struct sipmsg *m, struct sip_str params, const char *hdr, struct sip_error *err)
{
    const char *p = params.p;
    size_t n = params.len, i = 0;
    if (n == 0)
        return 0;
    for (;;) {
        /* a parameter: LWS name LWS [ "=" LWS value LWS ] */
        while (i < n && sip_lex_lws(p[i]))
            i++;
        size_t nb = i;
        while (i < n && sip_lex_token(p[i]))
            i++;
        if (i == nb)
            return sip_error_set(err, -EBADMSG, off_of(m, p + (i < n ? i : n - 1)),
                                 i < n && p[i] != ';' ? "%s parameter name has an invalid character"
                                                      : "%s has an empty parameter",
                                 hdr);
        while (i < n && sip_lex_lws(p[i]))
            i++;
        if (i < n && p[i] == '=') {
            i++;
            while (i < n && sip_lex_lws(p[i]))
                i++;
            if (i < n && p[i] == '"') {
                for (i++; i < n && p[i] != '"'; i++)
                    if (p[i] == '\\' && i + 1 < n)
                        i++;
                if (i >= n)
                    return sip_error_set(err, -EBADMSG, off_of(m, p + nb), "%s parameter has an unterminated quoted value",
                                         hdr);
                i++;
            } else {
                while (i < n && p[i] != ';' && !sip_lex_lws(p[i]))
                    i++;
            }
            while (i < n && sip_lex_lws(p[i]))
                i++;
        }
        if (i >= n)
            return 0;
        if (p[i] != ';')
            return sip_error_set(err, -EBADMSG, off_of(m, p + i), "%s parameter has an invalid character 0x%02x", hdr,
                                 (unsigned char)p[i]);
        i++;
    }
}

/* 1*DIGIT with a maximum; leading zeros allowed. */
static int check_number(struct sip_str v, uint64_t max)
{
    if (v.len == 0)
        return -EBADMSG;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (!sip_lex_digit(v.p[i]))
            return -EBADMSG;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
        if (n > max)
            return -ERANGE;
    }
    return 0;
}

static const char *hdr_label(enum sip_hdr_id id)
{
    switch (id) {
    case SIP_HDR_VIA: return "Via";
    case SIP_HDR_FROM: return "From";
    case SIP_HDR_TO: return "To";
    case SIP_HDR_CALL_ID: return "Call-ID";
    case SIP_HDR_CSEQ: return "CSeq";
    case SIP_HDR_CONTACT: return "Contact";
    case SIP_HDR_MAX_FORWARDS: return "Max-Forwards";
    case SIP_HDR_CONTENT_TYPE: return "Content-Type";
    default: return "header";
    }
}

static int check_nameaddr(struct sipmsg *m, const struct sip_hdr *h, struct sip_str el, struct sip_error *err)
{
    struct sip_nameaddr na;
    const char *label = hdr_label(h->id);
    int rc = sip_nameaddr_parse(el, &na, err);
    if (rc < 0)
        return rebase(m, rc, el, label, err);
    return check_params(m, na.params, label, err);
}

static int check_via(struct sipmsg *m, struct sip_str el, struct sip_error *err)
{
    struct sip_via v;
    int rc = sip_via_parse(el, &v, err);
    if (rc < 0)
        return rebase(m, rc, el, "Via", err);
    if ((rc = check_params(m, v.params, "Via", err)) < 0)
        return rc;
    if (v.branch.len < 7 || memcmp(v.branch.p, "z9hG4bK", 7) != 0)
        warn(m, el.p, "Via branch lacks the z9hG4bK magic cookie (RFC 2543 transaction matching)");
    return 0;
}

/* Date: rfc1123-date, which RFC 3261 20.17 requires in GMT; RFC 4475 3.1.2.12 lets it be ignored. */
static void check_date(struct sipmsg *m, const struct sip_hdr *h)
{
    struct sip_str v = h->value;
    if (v.len < 4 || memcmp(v.p + v.len - 4, " GMT", 4) != 0)
        warn(m, v.p, "Date is not in GMT (RFC 3261 20.17); ignored");
}

int sipmsg_check(struct sipmsg *m, struct sip_error *err)
{
    int rc;
    /* start line */
    if (!(m->version.len == 7 && sip_str_ieqc(m->version, "SIP/2.0")))
        return sip_error_set(err, -EBADMSG, off_of(m, m->version.p),
                             "unsupported SIP version \"%.*s\" (answer 505 Version Not Supported)",
                             (int)(m->version.len > 20 ? 20 : m->version.len), m->version.p);
    if (m->is_request) {
        struct sip_uri u;
        if ((rc = sip_uri_parse(m->uri, &u, err)) < 0)
            return rebase(m, rc, m->uri, "Request-URI", err);
        if (u.headers.len && (sip_str_ieqc(u.scheme, "sip") || sip_str_ieqc(u.scheme, "sips")))
            return sip_error_set(err, -EBADMSG, off_of(m, u.headers.p) - 1,
                                 "Request-URI must not carry '?' headers (RFC 3261 19.1.1)");
    }
    /* presence and uniqueness */
    static const enum sip_hdr_id single[] = {SIP_HDR_FROM, SIP_HDR_TO, SIP_HDR_CALL_ID, SIP_HDR_CSEQ,
                                             SIP_HDR_MAX_FORWARDS, SIP_HDR_CONTENT_TYPE};
    static const enum sip_hdr_id required[] = {SIP_HDR_VIA, SIP_HDR_FROM, SIP_HDR_TO, SIP_HDR_CALL_ID, SIP_HDR_CSEQ};
    const struct sip_hdr *seen[SIP_HDR_COUNT_] = {0};
    for (size_t i = 0; i < m->nhdrs; i++) {
        const struct sip_hdr *h = &m->hdrs[i];
        for (size_t k = 0; k < sizeof single / sizeof single[0]; k++)
            if (h->id == single[k] && seen[h->id] != NULL)
                return sip_error_set(err, -EBADMSG, off_of(m, h->name.p),
                                     "%s appears more than once (header %zu); it takes one value (RFC 3261 20)",
                                     hdr_label(h->id), i + 1);
        if (seen[h->id] == NULL)
            seen[h->id] = h;
    }
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++)
        if (seen[required[k]] == NULL)
            return sip_error_set(err, -EBADMSG, m->body.p ? off_of(m, m->body.p) : 0,
                                 "mandatory header %s is missing (RFC 3261 8.1.1)", hdr_label(required[k]));
    /* values */
    for (size_t i = 0; i < m->nhdrs; i++) {
        const struct sip_hdr *h = &m->hdrs[i];
        struct sip_str rest = h->value, el;
        switch (h->id) {
        case SIP_HDR_VIA: {
            int n = 0;
            while (sip_list_next(&rest, &el) == 0) {
                if ((rc = check_via(m, el, err)) < 0)
                    return rc;
                n++;
            }
            if (n == 0 || h->value.p[h->value.len - 1] == ',')
                return sip_error_set(err, -EBADMSG, off_of(m, h->value.p), "Via has an empty element");
            break;
        }
        case SIP_HDR_FROM:
        case SIP_HDR_TO:
            if ((rc = check_nameaddr(m, h, h->value, err)) < 0)
                return rc;
            break;
        case SIP_HDR_CONTACT: {
            struct sip_str t = sip_lex_trim(h->value);
            if (t.len == 1 && t.p[0] == '*')
                break;
            while (sip_list_next(&rest, &el) == 0)
                if ((rc = check_nameaddr(m, h, el, err)) < 0)
                    return rc;
            break;
        }
        case SIP_HDR_CSEQ: {
            struct sip_cseq cs;
            if ((rc = sip_cseq_parse(h->value, &cs, err)) < 0)
                return rebase(m, rc, h->value, "CSeq", err);
            if (m->is_request && !sip_str_eq(cs.method, m->method))
                return sip_error_set(err, -EBADMSG, off_of(m, cs.method.p),
                                     "CSeq method \"%.*s\" does not match the request method \"%.*s\"",
                                     (int)(cs.method.len > 32 ? 32 : cs.method.len), cs.method.p,
                                     (int)(m->method.len > 32 ? 32 : m->method.len), m->method.p);
            break;
        }
        case SIP_HDR_CALL_ID:
            if (h->value.len == 0)
                return sip_error_set(err, -EBADMSG, off_of(m, h->value.p), "Call-ID is empty");
            break;
        case SIP_HDR_MAX_FORWARDS:
            if ((rc = check_number(h->value, 255)) < 0)
                return sip_error_set(err, -EBADMSG, off_of(m, h->value.p),
                                     rc == -ERANGE ? "Max-Forwards \"%.*s\" is above 255 (RFC 3261 20.22)"
                                                   : "Max-Forwards \"%.*s\" is not a number",
                                     (int)(h->value.len > 24 ? 24 : h->value.len), h->value.p);
            break;
        default:
            if (h->id == SIP_HDR_OTHER && h->name.len == 4 && sip_str_ieqc(h->name, "Date"))
                check_date(m, h);
            break;
        }
    }
    return 0;
}
