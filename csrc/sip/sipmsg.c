/* SIP message parser: start line, header index, body (RFC 3261 sections 7 and 25).
 *
 * The parser copies the input once and indexes it.  Folded header lines
 * (CRLF or LF followed by SP/HTAB) are joined in the copy by overwriting the
 * line break with spaces, so every header value is one contiguous slice.
 * Bare LF line ends are accepted as well as CRLF.
 */
#include "sip/sipmsg.h"
#include "sip/sip_lex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIPMSG_DEFAULT_MAX_SIZE 65535u
#define SIPMSG_DEFAULT_MAX_HEADERS 256u
#define SIPMSG_INLINE_HEADERS 24u /* header slots allocated with the message; more are malloc'd */


int sip_error_set(struct sip_error *err, int code, size_t offset, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->offset = offset;
        va_start(ap, fmt);
        vsnprintf(err->reason, sizeof err->reason, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- slices ---- */

int sip_str_eq(struct sip_str a, struct sip_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int sip_str_ieq(struct sip_str a, struct sip_str b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (sip_lex_lower(a.p[i]) != sip_lex_lower(b.p[i]))
            return 0;
    return 1;
}

int sip_str_eqc(struct sip_str a, const char *c)
{
    return sip_str_eq(a, sip_str_c(c));
}

int sip_str_ieqc(struct sip_str a, const char *c)
{
    return sip_str_ieq(a, sip_str_c(c));
}

/* ---- header names ---- */

struct hdr_name {
    const char *name;
    unsigned char len;
    char compact; /* 0 when none */
    enum sip_hdr_id id;
};

#define HN(lit, c, id) {lit, sizeof(lit) - 1, c, id}
static const struct hdr_name hdr_names[] = {
    HN("Via", 'v', SIP_HDR_VIA),
    HN("From", 'f', SIP_HDR_FROM),
    HN("To", 't', SIP_HDR_TO),
    HN("Call-ID", 'i', SIP_HDR_CALL_ID),
    HN("CSeq", 0, SIP_HDR_CSEQ),
    HN("Contact", 'm', SIP_HDR_CONTACT),
    HN("Max-Forwards", 0, SIP_HDR_MAX_FORWARDS),
    HN("Content-Length", 'l', SIP_HDR_CONTENT_LENGTH),
    HN("Content-Type", 'c', SIP_HDR_CONTENT_TYPE),
    HN("Route", 0, SIP_HDR_ROUTE),
    HN("Record-Route", 0, SIP_HDR_RECORD_ROUTE),
    HN("Expires", 0, SIP_HDR_EXPIRES),
    HN("Supported", 'k', SIP_HDR_SUPPORTED),
    HN("Require", 0, SIP_HDR_REQUIRE),
    HN("Event", 'o', SIP_HDR_EVENT),
    HN("Subject", 's', SIP_HDR_SUBJECT),
    HN("Refer-To", 'r', SIP_HDR_REFER_TO),
    HN("Session-Expires", 'x', SIP_HDR_SESSION_EXPIRES),
    HN("Content-Encoding", 'e', SIP_HDR_CONTENT_ENCODING),
    HN("Allow-Events", 'u', SIP_HDR_ALLOW_EVENTS),
    HN("Referred-By", 'b', SIP_HDR_REFERRED_BY),
    HN("RSeq", 0, SIP_HDR_RSEQ),
    HN("RAck", 0, SIP_HDR_RACK),
    HN("User-Agent", 0, SIP_HDR_USER_AGENT),
};
#undef HN

/* 1 + index into hdr_names of the names of each length (2..16), 0-terminated */
static const unsigned char hdr_by_len[17][6] = {
    [2] = {3},                 /* To */
    [3] = {1},                 /* Via */
    [4] = {2, 5, 22, 23},      /* From CSeq RSeq RAck */
    [5] = {10, 15},            /* Route Event */
    [7] = {4, 6, 12, 14, 16},  /* Call-ID Contact Expires Require Subject */
    [8] = {17},                /* Refer-To */
    [9] = {13},                /* Supported */
    [10] = {24},               /* User-Agent */
    [11] = {21},               /* Referred-By */
    [12] = {7, 9, 11, 20},     /* Max-Forwards Content-Type Record-Route Allow-Events */
    [14] = {8},                /* Content-Length */
    [15] = {18},               /* Session-Expires */
    [16] = {19},               /* Content-Encoding */
};

/* Case-insensitive compare of n bytes; b is a known name (letters, digits and '-'). */
static int ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((a[i] | 0x20) != (b[i] | 0x20))
            return 0;
    return 1;
}

enum sip_hdr_id sip_hdr_id_of(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > 16)
        return SIP_HDR_OTHER;
    char first = sip_lex_lower(name[0]);
    if (len == 1) {
        for (size_t i = 0; i < sizeof hdr_names / sizeof hdr_names[0]; i++)
            if (hdr_names[i].compact == first)
                return hdr_names[i].id;
        return SIP_HDR_OTHER;
    }
    /* by length, then first letter: at most a few full compares */
    for (const unsigned char *i = hdr_by_len[len]; *i; i++) {
        const struct hdr_name *h = &hdr_names[*i - 1];
        if ((h->name[0] | 0x20) == first && ieq_n(name, h->name, len))
            return h->id;
    }
    return SIP_HDR_OTHER;
}

const struct sip_hdr *sipmsg_find(const struct sipmsg *m, enum sip_hdr_id id, const char *name, size_t *pos)
{
    if (m == NULL)
        return NULL;
    if (id == SIP_HDR_OTHER && name != NULL) /* a known name given as text finds its compact form too */
        id = sip_hdr_id_of(name, strlen(name));
    size_t i = pos ? *pos : 0;
    for (; i < m->nhdrs; i++) {
        const struct sip_hdr *h = &m->hdrs[i];
        int hit = id != SIP_HDR_OTHER ? h->id == id : (name != NULL && h->id == SIP_HDR_OTHER && sip_str_ieqc(h->name, name));
        if (hit) {
            if (pos)
                *pos = i + 1;
            return h;
        }
    }
    if (pos)
        *pos = m->nhdrs;
    return NULL;
}

/* ---- lists ---- */

int sip_list_next(struct sip_str *rest, struct sip_str *elem)
{
    /* fast path: no quotes and no angle brackets in the rest, so the element ends at the next comma */
    while (rest->len && memchr(rest->p, '"', rest->len) == NULL && memchr(rest->p, '<', rest->len) == NULL) {
        const char *comma = memchr(rest->p, ',', rest->len);
        size_t i = comma ? (size_t)(comma - rest->p) : rest->len;
        struct sip_str e = sip_lex_trim((struct sip_str){rest->p, i});
        rest->p += comma ? i + 1 : i;
        rest->len -= comma ? i + 1 : i;
        if (e.len) {
            *elem = e;
            return 0;
        }
    }
    while (rest->len) {
        const char *p = rest->p;
        size_t n = rest->len, i = 0;
        int inq = 0, angle = 0;
        for (; i < n; i++) {
            char c = p[i];
            if (inq) {
                if (c == '\\' && i + 1 < n)
                    i++;
                else if (c == '"')
                    inq = 0;
            } else if (angle) {
                if (c == '>')
                    angle = 0;
            } else if (c == '"') {
                inq = 1;
            } else if (c == '<') {
                angle = 1;
            } else if (c == ',') {
                break;
            }
        }
        struct sip_str e = sip_lex_trim((struct sip_str){p, i});
        if (i < n) {
            rest->p = p + i + 1;
            rest->len = n - i - 1;
        } else {
            rest->p = p + n;
            rest->len = 0;
        }
        if (e.len) {
            *elem = e;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- parsing ---- */

void sipmsg_free(struct sipmsg *m)
{
    if (m == NULL)
        return;
    if (m->hdrs != (struct sip_hdr *)(m + 1)) /* grew past the inline array */
        free(m->hdrs);
    free(m); /* the struct, the inline header array and the buffer are one allocation */
}

/* "SIP/" 1*DIGIT "." 1*DIGIT, case-insensitive "SIP". */
static int valid_version(struct sip_str v)
{
    if (v.len < 7 || sip_lex_lower(v.p[0]) != 's' || sip_lex_lower(v.p[1]) != 'i' || sip_lex_lower(v.p[2]) != 'p' || v.p[3] != '/')
        return 0;
    size_t i = 4, d = 0;
    while (i < v.len && sip_lex_digit(v.p[i])) {
        i++;
        d++;
    }
    if (d == 0 || i >= v.len || v.p[i] != '.')
        return 0;
    i++;
    d = 0;
    while (i < v.len && sip_lex_digit(v.p[i])) {
        i++;
        d++;
    }
    return d > 0 && i == v.len;
}

static int parse_start_line(struct sipmsg *m, const char *line, size_t n, size_t off, struct sip_error *err)
{
    if (n >= 4 && sip_lex_lower(line[0]) == 's' && sip_lex_lower(line[1]) == 'i' && sip_lex_lower(line[2]) == 'p' && line[3] == '/') {
        /* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
        size_t i = 0;
        while (i < n && line[i] != ' ')
            i++;
        m->version = (struct sip_str){line, i};
        if (!valid_version(m->version))
            return sip_error_set(err, -EBADMSG, off, "status line has a malformed SIP version \"%.*s\"",
                           (int)(i > 20 ? 20 : i), line);
        if (i >= n)
            return sip_error_set(err, -EBADMSG, off + i, "status line has no status code");
        i++;
        size_t cs = i;
        while (i < n && sip_lex_digit(line[i]))
            i++;
        if (i - cs != 3 || (i < n && line[i] != ' '))
            return sip_error_set(err, -EBADMSG, off + cs, "status code \"%.*s\" is not 3 digits",
                           (int)((n - cs) > 12 ? 12 : n - cs), line + cs);
        int code = (line[cs] - '0') * 100 + (line[cs + 1] - '0') * 10 + (line[cs + 2] - '0');
        if (code < 100 || code > 699)
            return sip_error_set(err, -EBADMSG, off + cs, "status code %d is outside 100..699", code);
        m->status = code;
        m->is_request = 0;
        if (i < n)
            i++;
        m->reason = (struct sip_str){line + i, n - i};
        while (m->reason.len && sip_lex_ws(m->reason.p[m->reason.len - 1]))
            m->reason.len--;
        if (m->reason.len == 0)
            m->reason.p = line + i;
        return 0;
    }
    /* Request-Line = Method SP Request-URI SP SIP-Version */
    size_t sp1 = 0;
    while (sp1 < n && line[sp1] != ' ')
        sp1++;
    size_t sp2 = n;
    while (sp2 > 0 && line[sp2 - 1] != ' ')
        sp2--;
    if (sp1 == 0 || sp1 >= n || sp2 == 0 || sp2 - 1 <= sp1)
        return sip_error_set(err, -EBADMSG, off, "start line is neither a request line nor a status line");
    for (size_t i = 0; i < sp1; i++)
        if (!sip_lex_token(line[i]))
            return sip_error_set(err, -EBADMSG, off + i, "request method has an invalid character 0x%02x",
                           (unsigned char)line[i]);
    m->method = (struct sip_str){line, sp1};
    m->uri = (struct sip_str){line + sp1 + 1, sp2 - 1 - (sp1 + 1)};
    m->version = (struct sip_str){line + sp2, n - sp2};
    if (m->uri.len == 0)
        return sip_error_set(err, -EBADMSG, off + sp1 + 1, "request line has an empty Request-URI");
    for (size_t i = 0; i < m->uri.len; i++) {
        unsigned char c = (unsigned char)m->uri.p[i];
        if (c <= ' ' || c == 0x7f)
            return sip_error_set(err, -EBADMSG, off + sp1 + 1 + i,
                           "Request-URI contains whitespace or a control character (0x%02x)", c);
    }
    if (!valid_version(m->version))
        return sip_error_set(err, -EBADMSG, off + sp2, "request line has a malformed SIP version \"%.*s\"",
                       (int)(m->version.len > 20 ? 20 : m->version.len), m->version.p);
    m->is_request = 1;
    return 0;
}

/* Content-Length: 1*DIGIT; returns 0 and sets *v, or -EBADMSG. Values beyond SIZE_MAX/10 clamp. */
static int parse_content_length(struct sip_str v, size_t *out)
{
    if (v.len == 0)
        return -EBADMSG;
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (!sip_lex_digit(v.p[i]))
            return -EBADMSG;
        if (n > (SIZE_MAX - 9) / 10)
            n = SIZE_MAX; /* absurdly large: clamps, and is then larger than any data */
        else
            n = n * 10 + (size_t)(v.p[i] - '0');
    }
    *out = n;
    return 0;
}

static int add_hdr(struct sipmsg *m, size_t *cap, size_t max_headers, const struct sip_hdr *h)
{
    if (m->nhdrs >= max_headers)
        return -E2BIG;
    if (m->nhdrs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        if (ncap > max_headers)
            ncap = max_headers;
        int inline_hdrs = m->hdrs == (struct sip_hdr *)(m + 1);
        struct sip_hdr *nh = inline_hdrs ? malloc(ncap * sizeof *nh) : realloc(m->hdrs, ncap * sizeof *nh);
        if (nh == NULL)
            return -ENOMEM;
        if (inline_hdrs)
            memcpy(nh, m->hdrs, m->nhdrs * sizeof *nh);
        m->hdrs = nh;
        *cap = ncap;
    }
    m->hdrs[m->nhdrs++] = *h;
    return 0;
}

/* Index of the next '\n' at or after i, or len. */
static size_t find_lf(const char *b, size_t i, size_t len)
{
    const char *q = i < len ? memchr(b + i, '\n', len - i) : NULL;
    return q ? (size_t)(q - b) : len;
}

static int parse_headers_and_body(struct sipmsg *m, size_t pos, size_t max_headers, struct sip_error *err)
{
    char *b = m->buf;
    size_t len = m->len;
    size_t cap = SIPMSG_INLINE_HEADERS, lineno = 1; /* the start line is line 1 */
    int have_cl = 0;
    size_t cl = 0;
    size_t body_start = len;

    for (;;) {
        if (pos >= len) { /* data ends right after the headers: empty body, no blank line */
            body_start = len;
            break;
        }
        size_t lf = find_lf(b, pos, len);
        size_t end = (lf > pos && b[lf - 1] == '\r') ? lf - 1 : lf;
        lineno++;
        if (end == pos) { /* the blank line */
            body_start = lf < len ? lf + 1 : len;
            break;
        }
        if (lf >= len)
            return sip_error_set(err, -ENODATA, pos, "header line %zu is not terminated (message truncated?)", lineno);
        if (sip_lex_ws(b[pos]))
            return sip_error_set(err, -EBADMSG, pos, "header line %zu starts with whitespace but follows the start line",
                           lineno);
        /* join continuation lines: the line break before SP/HTAB becomes spaces */
        while (lf + 1 < len && sip_lex_ws(b[lf + 1])) {
            for (size_t k = end; k <= lf; k++)
                b[k] = ' ';
            lf = find_lf(b, lf + 1, len);
            end = (b[lf - 1] == '\r') ? lf - 1 : lf;
            if (lf >= len)
                return sip_error_set(err, -ENODATA, pos, "header line %zu is not terminated (message truncated?)",
                               lineno);
        }
        const char *colon = memchr(b + pos, ':', end - pos);
        if (colon == NULL)
            return sip_error_set(err, -EBADMSG, pos, "header line %zu has no colon", lineno);
        size_t ce = (size_t)(colon - b);
        size_t ne = ce;
        while (ne > pos && sip_lex_ws(b[ne - 1]))
            ne--;
        if (ne == pos)
            return sip_error_set(err, -EBADMSG, pos, "header line %zu has an empty name", lineno);
        for (size_t k = pos; k < ne; k++)
            if (!sip_lex_token(b[k]))
                return sip_error_set(err, -EBADMSG, k, "header line %zu has an invalid character 0x%02x in its name",
                               lineno, (unsigned char)b[k]);
        struct sip_hdr h;
        h.name = (struct sip_str){b + pos, ne - pos};
        h.id = sip_hdr_id_of(h.name.p, h.name.len);
        h.value = sip_lex_trim((struct sip_str){b + ce + 1, end - ce - 1});
        if (h.value.len == 0)
            h.value.p = b + ce + 1;
        if (h.id == SIP_HDR_CONTENT_LENGTH) {
            size_t v;
            if (parse_content_length(h.value, &v) < 0)
                return sip_error_set(err, -EBADMSG, (size_t)(h.value.p - b),
                               h.value.len && h.value.p[0] == '-' ? "Content-Length \"%.*s\" is negative"
                                                                  : "Content-Length \"%.*s\" is not a number",
                               (int)(h.value.len > 24 ? 24 : h.value.len), h.value.p);
            if (have_cl && v != cl)
                return sip_error_set(err, -EBADMSG, (size_t)(h.value.p - b),
                               "Content-Length appears twice with different values (%zu and %zu)", cl, v);
            have_cl = 1;
            cl = v;
        }
        int rc = add_hdr(m, &cap, max_headers, &h);
        if (rc == -E2BIG)
            return sip_error_set(err, rc, pos, "more than %zu header fields", max_headers);
        if (rc < 0)
            return sip_error_set(err, rc, pos, "out of memory");
        pos = lf + 1;
    }

    size_t present = len - body_start;
    if (have_cl) {
        if (cl > present) {
            if (cl == SIZE_MAX)
                return sip_error_set(err, -EBADMSG, body_start, "Content-Length is too large; %zu body bytes present",
                               present);
            return sip_error_set(err, -EBADMSG, body_start, "Content-Length %zu exceeds the %zu body bytes present", cl,
                           present);
        }
        m->body = (struct sip_str){b + body_start, cl};
        m->len = body_start + cl; /* datagram semantics: trailing bytes are not part of the message */
    } else {
        m->body = (struct sip_str){b + body_start, present};
    }
    return 0;
}

int sipmsg_parse(const char *data, size_t len, const struct sipmsg_limits *lim, struct sipmsg **out,
                 struct sip_error *err)
{
    if (err) {
        err->code = 0;
        err->offset = 0;
        err->reason[0] = '\0';
    }
    if (out == NULL)
        return sip_error_set(err, -EINVAL, 0, "no output pointer");
    *out = NULL;
    if (data == NULL && len > 0)
        return sip_error_set(err, -EINVAL, 0, "no input data");
    size_t max_size = lim && lim->max_size ? lim->max_size : SIPMSG_DEFAULT_MAX_SIZE;
    size_t max_headers = lim && lim->max_headers ? lim->max_headers : SIPMSG_DEFAULT_MAX_HEADERS;
    if (len > max_size)
        return sip_error_set(err, -E2BIG, max_size, "message of %zu bytes exceeds the limit of %zu", len, max_size);

    /* RFC 3261 7.5: ignore CRLFs before the start line */
    size_t pos = 0;
    while (pos < len && (data[pos] == '\r' || data[pos] == '\n'))
        pos++;
    if (pos >= len)
        return sip_error_set(err, -ENODATA, pos, "empty message");

    /* one allocation: the struct, an inline array of SIPMSG_INLINE_HEADERS headers, then the buffer */
    struct sipmsg *m = malloc(sizeof *m + SIPMSG_INLINE_HEADERS * sizeof(struct sip_hdr) + len + 1);
    if (m == NULL)
        return sip_error_set(err, -ENOMEM, 0, "out of memory");
    memset(m, 0, sizeof *m);
    m->hdrs = (struct sip_hdr *)(m + 1);
    m->buf = (char *)(m->hdrs + SIPMSG_INLINE_HEADERS);
    memcpy(m->buf, data, len);
    m->buf[len] = '\0'; /* not relied upon; eases debugging */
    m->len = len;

    size_t lf = find_lf(m->buf, pos, len);
    int rc;
    if (lf >= len) {
        rc = sip_error_set(err, -ENODATA, pos, "start line is not terminated (message truncated?)");
        goto fail;
    }
    size_t end = (lf > pos && m->buf[lf - 1] == '\r') ? lf - 1 : lf;
    rc = parse_start_line(m, m->buf + pos, end - pos, pos, err);
    if (rc < 0)
        goto fail;
    rc = parse_headers_and_body(m, lf + 1, max_headers, err);
    if (rc < 0)
        goto fail;
    if (!(lim && (lim->flags & SIPMSG_SYNTAX_ONLY)) && (rc = sipmsg_check(m, err)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    sipmsg_free(m);
    return rc;
}
