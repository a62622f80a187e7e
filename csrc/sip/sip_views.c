/* Typed views over header value slices: URI, parameters, Via, name-addr, CSeq.
 *
 * Every function here borrows its input slice and returns slices into it;
 * nothing is allocated.  Offsets in struct sip_error are relative to the
 * start of the slice handed in.
 */
#include <errno.h>
#include <stdint.h>

#include "sip/sip_lex.h"
#include "sip/sipmsg.h"

static size_t off_in(struct sip_str whole, const char *p)
{
    return (size_t)(p - whole.p);
}

/* Decimal port 1..65535 from exactly the slice s; 0 on success. */
static int parse_port(struct sip_str s, int *port)
{
    if (s.len == 0 || s.len > 5)
        return -EBADMSG;
    long v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (!sip_lex_digit(s.p[i]))
            return -EBADMSG;
        v = v * 10 + (s.p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -EBADMSG;
    *port = (int)v;
    return 0;
}

static int host_char(char c)
{
    return sip_lex_alpha(c) || sip_lex_digit(c) || c == '-' || c == '.' || c == '_';
}

static int hex_char(char c)
{
    return sip_lex_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ---- parameters ---- */

int sip_param_next(struct sip_str *rest, struct sip_str *name, struct sip_str *val)
{
    while (rest->len) {
        const char *p = rest->p;
        size_t n = rest->len, i = 0;
        int inq = 0;
        for (; i < n; i++) {
            char c = p[i];
            if (inq) {
                if (c == '\\' && i + 1 < n)
                    i++;
                else if (c == '"')
                    inq = 0;
            } else if (c == '"') {
                inq = 1;
            } else if (c == ';') {
                break;
            }
        }
        struct sip_str item = sip_lex_trim((struct sip_str){p, i});
        rest->p = p + (i < n ? i + 1 : n);
        rest->len = i < n ? n - i - 1 : 0;
        if (item.len == 0)
            continue;
        size_t eq = 0;
        while (eq < item.len && item.p[eq] != '=' && item.p[eq] != '"')
            eq++;
        if (eq < item.len && item.p[eq] == '=') {
            *name = sip_lex_trim((struct sip_str){item.p, eq});
            struct sip_str v = sip_lex_trim((struct sip_str){item.p + eq + 1, item.len - eq - 1});
            if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"') {
                v.p++;
                v.len -= 2;
            }
            if (v.len == 0)
                v.p = item.p + item.len;
            *val = v;
        } else {
            *name = item;
            *val = (struct sip_str){item.p + item.len, 0};
        }
        return 0;
    }
    return -ENOENT;
}

int sip_param_find(struct sip_str params, const char *name, struct sip_str *val)
{
    struct sip_str rest = params, n, v;
    if (name == NULL)
        return -ENOENT;
    struct sip_str want = sip_str_c(name);
    while (sip_param_next(&rest, &n, &v) == 0) {
        if (sip_str_ieq(n, want)) {
            if (val)
                *val = v;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- URI ---- */

/* host [":" port] with IPv6 references; s is the whole hostport slice. */
static int parse_hostport(struct sip_str whole, struct sip_str s, struct sip_str *host, int *is_v6, int *port,
                          const char *what, struct sip_error *err)
{
    size_t i = 0;
    *is_v6 = 0;
    *port = 0;
    if (s.len && s.p[0] == '[') {
        i = 1;
        while (i < s.len && s.p[i] != ']') {
            if (!hex_char(s.p[i]) && s.p[i] != ':' && s.p[i] != '.')
                return sip_error_set(err, -EBADMSG, off_in(whole, s.p + i),
                                     "%s IPv6 reference has an invalid character 0x%02x", what,
                                     (unsigned char)s.p[i]);
            i++;
        }
        if (i >= s.len)
            return sip_error_set(err, -EBADMSG, off_in(whole, s.p), "%s IPv6 reference has no closing ']'", what);
        if (i == 1)
            return sip_error_set(err, -EBADMSG, off_in(whole, s.p), "%s IPv6 reference is empty", what);
        *host = (struct sip_str){s.p + 1, i - 1};
        *is_v6 = 1;
        i++;
    } else {
        while (i < s.len && s.p[i] != ':') {
            if (!host_char(s.p[i]))
                return sip_error_set(err, -EBADMSG, off_in(whole, s.p + i),
                                     "%s host has an invalid character 0x%02x", what, (unsigned char)s.p[i]);
            i++;
        }
        if (i == 0)
            return sip_error_set(err, -EBADMSG, off_in(whole, s.p), "%s has an empty host", what);
        *host = (struct sip_str){s.p, i};
    }
    if (i == s.len)
        return 0;
    if (s.p[i] != ':')
        return sip_error_set(err, -EBADMSG, off_in(whole, s.p + i), "%s has junk after the host", what);
    struct sip_str ps = {s.p + i + 1, s.len - i - 1};
    if (parse_port(ps, port) < 0)
        return sip_error_set(err, -EBADMSG, off_in(whole, ps.p), "%s port \"%.*s\" is not a number in 1..65535",
                             what, (int)(ps.len > 16 ? 16 : ps.len), ps.p);
    return 0;
}

int sip_uri_parse(struct sip_str in, struct sip_uri *out, struct sip_error *err)
{
    memset(out, 0, sizeof *out);
    struct sip_str s = sip_lex_trim(in);
    if (s.len == 0)
        return sip_error_set(err, -EBADMSG, 0, "empty URI");
    for (size_t k = 0; k < s.len; k++) {
        unsigned char c = (unsigned char)s.p[k];
        if (c <= ' ' || c == 0x7f)
            return sip_error_set(err, -EBADMSG, off_in(in, s.p + k),
                                 "URI contains whitespace or a control character (0x%02x)", c);
    }
    size_t i = 0;
    if (!sip_lex_alpha(s.p[0]))
        return sip_error_set(err, -EBADMSG, off_in(in, s.p), "URI does not start with a scheme");
    while (i < s.len && (sip_lex_alpha(s.p[i]) || sip_lex_digit(s.p[i]) || s.p[i] == '+' || s.p[i] == '-' ||
                         s.p[i] == '.'))
        i++;
    if (i >= s.len || s.p[i] != ':')
        return sip_error_set(err, -EBADMSG, off_in(in, s.p + i), "URI has no ':' after its scheme");
    out->scheme = (struct sip_str){s.p, i};
    struct sip_str rest = {s.p + i + 1, s.len - i - 1};
    if (rest.len == 0)
        return sip_error_set(err, -EBADMSG, off_in(in, rest.p), "URI is empty after its scheme");

    const char *sc = out->scheme.p;
    size_t sl = out->scheme.len;
    int is_sip = (sl == 3 || (sl == 4 && (sc[3] | 0x20) == 's')) && (sc[0] | 0x20) == 's' && (sc[1] | 0x20) == 'i' &&
                 (sc[2] | 0x20) == 'p';
    int is_tel = sl == 3 && (sc[0] | 0x20) == 't' && (sc[1] | 0x20) == 'e' && (sc[2] | 0x20) == 'l';
    if (!is_sip && !is_tel) { /* opaque: everything after "scheme:" */
        out->user = rest;
        return 0;
    }
    /* headers after the first '?' that follows the userinfo; params after the first ';' that follows the host */
    const char *at = memchr(rest.p, '@', rest.len);
    struct sip_str hp = rest;
    if (is_sip && at) {
        struct sip_str ui = {rest.p, (size_t)(at - rest.p)};
        if (ui.len == 0)
            return sip_error_set(err, -EBADMSG, off_in(in, rest.p), "URI has an empty user part before '@'");
        const char *colon = memchr(ui.p, ':', ui.len);
        if (colon) {
            out->user = (struct sip_str){ui.p, (size_t)(colon - ui.p)};
            out->password = (struct sip_str){colon + 1, ui.len - out->user.len - 1};
        } else {
            out->user = ui;
        }
        hp = (struct sip_str){at + 1, rest.len - ui.len - 1};
    }
    /* one pass: the first ';' (params) and the first '?' (headers); a ';' after the '?' is part of the headers */
    size_t q = 0, semi = hp.len;
    for (; q < hp.len && hp.p[q] != '?'; q++)
        if (hp.p[q] == ';' && semi == hp.len)
            semi = q;
    if (q < hp.len)
        out->headers = (struct sip_str){hp.p + q + 1, hp.len - q - 1};
    if (semi > q)
        semi = q;
    if (semi < q)
        out->params = (struct sip_str){hp.p + semi + 1, q - semi - 1};
    struct sip_str main = {hp.p, semi};
    if (is_tel) {
        if (main.len == 0)
            return sip_error_set(err, -EBADMSG, off_in(in, hp.p), "tel URI has no number");
        out->user = main;
        return 0;
    }
    return parse_hostport(in, main, &out->host, &out->host_is_ipv6, &out->port, "URI", err);
}

/* ---- Via ---- */

static size_t skip_lws(struct sip_str s, size_t i)
{
    while (i < s.len && sip_lex_lws(s.p[i]))
        i++;
    return i;
}

static size_t take_token(struct sip_str s, size_t i)
{
    while (i < s.len && sip_lex_token(s.p[i]))
        i++;
    return i;
}

int sip_via_parse(struct sip_str in, struct sip_via *out, struct sip_error *err)
{
    memset(out, 0, sizeof *out);
    struct sip_str s = sip_lex_trim(in);
    size_t base = off_in(in, s.p);
    /* sent-protocol = protocol-name SLASH protocol-version SLASH transport, LWS allowed around the slashes */
    size_t i = 0, a = take_token(s, 0);
    if (a == 0)
        return sip_error_set(err, -EBADMSG, base, "Via has no protocol name");
    i = skip_lws(s, a);
    if (i >= s.len || s.p[i] != '/')
        return sip_error_set(err, -EBADMSG, base + i, "Via protocol name is not followed by '/'");
    i = skip_lws(s, i + 1);
    size_t vb = i, ve = take_token(s, i);
    if (ve == vb)
        return sip_error_set(err, -EBADMSG, base + i, "Via has no protocol version");
    out->protocol = (struct sip_str){s.p, ve};
    i = skip_lws(s, ve);
    if (i >= s.len || s.p[i] != '/')
        return sip_error_set(err, -EBADMSG, base + i, "Via protocol version is not followed by '/'");
    i = skip_lws(s, i + 1);
    size_t tb = i, te = take_token(s, i);
    if (te == tb)
        return sip_error_set(err, -EBADMSG, base + i, "Via has no transport");
    out->transport = (struct sip_str){s.p + tb, te - tb};
    i = skip_lws(s, te);
    if (i == te)
        return sip_error_set(err, -EBADMSG, base + i, "Via transport is not followed by whitespace and a host");
    /* sent-by = host [ COLON port ] ; COLON may have LWS around it */
    size_t hb = i;
    if (i < s.len && s.p[i] == '[') {
        while (i < s.len && s.p[i] != ']')
            i++;
        if (i < s.len)
            i++;
    } else {
        while (i < s.len && host_char(s.p[i]))
            i++;
    }
    size_t he = i;
    struct sip_str port = {NULL, 0};
    i = skip_lws(s, i);
    if (i < s.len && s.p[i] == ':') {
        i = skip_lws(s, i + 1);
        size_t pb = i;
        while (i < s.len && sip_lex_digit(s.p[i]))
            i++;
        port = (struct sip_str){s.p + pb, i - pb};
        if (port.len == 0)
            return sip_error_set(err, -EBADMSG, base + pb, "Via has ':' but no port");
        i = skip_lws(s, i);
    }
    struct sip_str hostpart = {s.p + hb, he - hb};
    int dummy;
    int rc = parse_hostport(in, hostpart, &out->host, &out->host_is_ipv6, &dummy, "Via", err);
    if (rc < 0)
        return rc;
    if (port.len && parse_port(port, &out->port) < 0)
        return sip_error_set(err, -EBADMSG, off_in(in, port.p), "Via port \"%.*s\" is not a number in 1..65535",
                             (int)(port.len > 16 ? 16 : port.len), port.p);
    if (i < s.len) {
        if (s.p[i] != ';')
            return sip_error_set(err, -EBADMSG, base + i, "Via has unexpected character 0x%02x after the sent-by",
                                 (unsigned char)s.p[i]);
        out->params = sip_lex_trim((struct sip_str){s.p + i + 1, s.len - i - 1});
    }
    /* one pass over the parameters; the first of each name counts, as with sip_param_find */
    struct sip_str rest = out->params, pn, v;
    int seen_branch = 0, seen_received = 0;
    while (sip_param_next(&rest, &pn, &v) == 0) {
        if (!seen_branch && sip_str_ieqc(pn, "branch")) {
            out->branch = v;
            seen_branch = 1;
        } else if (!seen_received && sip_str_ieqc(pn, "received")) {
            out->received = v;
            seen_received = 1;
        } else if (!out->has_rport && sip_str_ieqc(pn, "rport")) {
            out->has_rport = 1;
            if (v.len && parse_port(v, &out->rport) < 0)
                return sip_error_set(err, -EBADMSG, off_in(in, v.p),
                                     "Via rport \"%.*s\" is not a number in 1..65535", (int)(v.len > 16 ? 16 : v.len),
                                     v.p);
        }
    }
    return 0;
}

int sipmsg_top_via(const struct sipmsg *m, struct sip_via *out, struct sip_error *err)
{
    size_t pos = 0;
    const struct sip_hdr *h;
    while ((h = sipmsg_find(m, SIP_HDR_VIA, NULL, &pos)) != NULL) {
        struct sip_str rest = h->value, elem;
        if (sip_list_next(&rest, &elem) == 0)
            return sip_via_parse(elem, out, err);
    }
    memset(out, 0, sizeof *out);
    return sip_error_set(err, -ENOENT, 0, "message has no Via header");
}

/* ---- name-addr / addr-spec ---- */

static int parse_after_uri(struct sip_str in, struct sip_str s, size_t i, struct sip_nameaddr *out,
                           struct sip_error *err)
{
    i = skip_lws(s, i);
    if (i < s.len) {
        if (s.p[i] != ';')
            return sip_error_set(err, -EBADMSG, off_in(in, s.p + i),
                                 "unexpected character 0x%02x after the URI (expected ';')", (unsigned char)s.p[i]);
        out->params = sip_lex_trim((struct sip_str){s.p + i + 1, s.len - i - 1});
    }
    struct sip_str v;
    if (sip_param_find(out->params, "tag", &v) == 0)
        out->tag = v;
    return 0;
}

int sip_nameaddr_parse(struct sip_str in, struct sip_nameaddr *out, struct sip_error *err)
{
    memset(out, 0, sizeof *out);
    struct sip_str s = sip_lex_trim(in);
    size_t i = 0;
    struct sip_uri u;
    int rc;
    if (s.len == 0)
        return sip_error_set(err, -EBADMSG, 0, "empty address");
    if (s.p[0] == '"') {
        i = 1;
        while (i < s.len && s.p[i] != '"') {
            if (s.p[i] == '\\') {
                if (i + 1 >= s.len)
                    break;
                i++;
            }
            i++;
        }
        if (i >= s.len)
            return sip_error_set(err, -EBADMSG, off_in(in, s.p), "display name has an unterminated quoted string");
        out->display = (struct sip_str){s.p + 1, i - 1};
        i = skip_lws(s, i + 1);
        if (i >= s.len || s.p[i] != '<')
            return sip_error_set(err, -EBADMSG, off_in(in, s.p + i), "quoted display name is not followed by '<'");
    } else {
        const char *lt = memchr(s.p, '<', s.len);
        if (lt == NULL) { /* addr-spec: ';' params belong to the header, not the URI */
            size_t e = 0;
            while (e < s.len && s.p[e] != ';')
                e++;
            out->uri = sip_lex_trim((struct sip_str){s.p, e});
            /* RFC 3261 20.10: a URI with ',', ';' or '?' must be written inside <> (RFC 4475 3.1.2.13) */
            const char *q = out->uri.len ? memchr(out->uri.p, '?', out->uri.len) : NULL;
            if (q != NULL)
                return sip_error_set(err, -EBADMSG, off_in(in, q),
                                     "a URI with '?' headers must be enclosed in <> (RFC 3261 20.10)");
            if (!(out->uri.len == 1 && out->uri.p[0] == '*') && (rc = sip_uri_parse(out->uri, &u, err)) < 0) {
                if (err)
                    err->offset += off_in(in, out->uri.p);
                return rc;
            }
            return parse_after_uri(in, s, e, out, err);
        }
        i = (size_t)(lt - s.p);
        for (size_t k = 0; k < i; k++)
            if (!sip_lex_token(s.p[k]) && !sip_lex_lws(s.p[k]))
                return sip_error_set(err, -EBADMSG, off_in(in, s.p + k),
                                     "unquoted display name has a non-token character 0x%02x",
                                     (unsigned char)s.p[k]);
        out->display = sip_lex_trim((struct sip_str){s.p, i});
        if (out->display.len == 0)
            out->display.p = s.p;
    }
    /* s.p[i] == '<' */
    size_t ub = i + 1, ue = ub;
    while (ue < s.len && s.p[ue] != '>')
        ue++;
    if (ue >= s.len)
        return sip_error_set(err, -EBADMSG, off_in(in, s.p + i), "'<' without a matching '>'");
    out->uri = (struct sip_str){s.p + ub, ue - ub};
    if (out->uri.len && (sip_lex_lws(out->uri.p[0]) || sip_lex_lws(out->uri.p[out->uri.len - 1])))
        return sip_error_set(err, -EBADMSG, off_in(in, s.p + i),
                             "whitespace inside <> around the URI (RFC 3261 addr-spec, RFC 4475 3.1.2.14)");
    if ((rc = sip_uri_parse(out->uri, &u, err)) < 0) {
        if (err)
            err->offset += off_in(in, out->uri.p);
        return rc;
    }
    return parse_after_uri(in, s, ue + 1, out, err);
}

/* ---- CSeq ---- */

int sip_cseq_parse(struct sip_str in, struct sip_cseq *out, struct sip_error *err)
{
    memset(out, 0, sizeof *out);
    struct sip_str s = sip_lex_trim(in);
    size_t i = 0;
    uint64_t n = 0;
    while (i < s.len && sip_lex_digit(s.p[i])) {
        n = n * 10 + (uint64_t)(s.p[i] - '0');
        if (n > 0x7fffffffu)
            return sip_error_set(err, -EBADMSG, off_in(in, s.p), "CSeq number is not below 2**31");
        i++;
    }
    if (i == 0)
        return sip_error_set(err, -EBADMSG, off_in(in, s.p), "CSeq does not start with a number");
    size_t mb = skip_lws(s, i);
    if (mb == i)
        return sip_error_set(err, -EBADMSG, off_in(in, s.p + i), "CSeq number is not followed by whitespace");
    size_t me = take_token(s, mb);
    if (me == mb || me != s.len)
        return sip_error_set(err, -EBADMSG, off_in(in, s.p + mb), "CSeq method is missing or not a token");
    out->num = (uint32_t)n;
    out->method = (struct sip_str){s.p + mb, me - mb};
    return 0;
}
