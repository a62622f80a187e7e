/* SIP message parser and serializer (RFC 3261 section 7 and 25).
 *
 * A parsed message owns one copy of the bytes it was parsed from and an
 * index of slices into that copy: the start line, every header field (name
 * and value) and the body.  Typed views (URI, Via, name-addr, CSeq) are
 * parsed on demand from a header value slice; they borrow the message's
 * buffer and are valid as long as the message lives.
 *
 * Plain C11, no Python.  Every read is bounded by a length held here; no
 * function relies on NUL termination of wire data.
 */
#ifndef PYSIPTEST_SIP_SIPMSG_H
#define PYSIPTEST_SIP_SIPMSG_H

#include <stddef.h>
#include <stdint.h>

/* A slice of bytes; never NUL-terminated on purpose. p may be NULL when len==0. */
struct sip_str {
    const char *p;
    size_t len;
};

/* Well-known header ids; compact forms map to the same id (v, f, t, i, m, l, c, k, s, e, o, r, u, x). */
enum sip_hdr_id {
    SIP_HDR_OTHER = 0,
    SIP_HDR_VIA,
    SIP_HDR_FROM,
    SIP_HDR_TO,
    SIP_HDR_CALL_ID,
    SIP_HDR_CSEQ,
    SIP_HDR_CONTACT,
    SIP_HDR_MAX_FORWARDS,
    SIP_HDR_CONTENT_LENGTH,
    SIP_HDR_CONTENT_TYPE,
    SIP_HDR_ROUTE,
    SIP_HDR_RECORD_ROUTE,
    SIP_HDR_EXPIRES,
    SIP_HDR_SUPPORTED,
    SIP_HDR_REQUIRE,
    SIP_HDR_EVENT,
    SIP_HDR_SUBJECT,
    SIP_HDR_REFER_TO,
    SIP_HDR_SESSION_EXPIRES,
    SIP_HDR_CONTENT_ENCODING,
    SIP_HDR_ALLOW_EVENTS,
    SIP_HDR_REFERRED_BY,
    SIP_HDR_RSEQ,
    SIP_HDR_RACK,
    SIP_HDR_USER_AGENT,
    SIP_HDR_COUNT_ /* keep last */
};

struct sip_hdr {
    enum sip_hdr_id id;
    struct sip_str name;  /* as written on the wire (e.g. "v" or "Via") */
    struct sip_str value; /* leading/trailing LWS trimmed; folded lines already joined by spaces */
};

struct sipmsg_limits {
    size_t max_size;    /* whole message in bytes; 0 means the default (65535) */
    size_t max_headers; /* header fields; 0 means the default (256) */
    unsigned flags;     /* SIPMSG_* below; 0 is the default: full RFC 3261 checks */
};
/* Index the message only (start line, header slices, body), skip sipmsg_check(). */
#define SIPMSG_SYNTAX_ONLY 1u

/* Something the parser accepted as a tolerant element may (RFC 4475), marked on the message. */
struct sip_warning {
    size_t offset;    /* byte offset in the message */
    const char *what; /* static text */
};
#define SIPMSG_MAX_WARNINGS 8

struct sip_error {
    int code;          /* negative errno-style value: -EBADMSG malformed, -ENODATA incomplete, -E2BIG limit, -ENOMEM */
    size_t offset;     /* byte offset in the input where the problem was found */
    char reason[160];  /* human readable, NUL-terminated */
};

struct sipmsg {
    char *buf; /* owned copy of the message bytes (length len) */
    size_t len;
    int is_request;
    /* request line */
    struct sip_str method;
    struct sip_str uri;
    /* status line */
    int status;
    struct sip_str reason;
    struct sip_str version; /* "SIP/2.0" */
    struct sip_hdr *hdrs;   /* owned array, in wire order */
    size_t nhdrs;
    struct sip_str body;    /* bytes after the blank line, Content-Length bytes long when the header is present */
    struct sip_warning warnings[SIPMSG_MAX_WARNINGS]; /* the first nwarnings are set */
    size_t nwarnings;
};

/* Parse one datagram or one framed stream message.
 * data/len: borrowed; the message takes its own copy.
 * lim: may be NULL for defaults.
 * On success returns 0 and sets *out (caller owns it; free with sipmsg_free).
 * On failure returns a negative code, *out is NULL, and err (if non-NULL) says what and where.
 * Datagram semantics: bytes past Content-Length are ignored (m->len then excludes them); a missing
 * Content-Length means the body runs to the end of the data; a Content-Length larger than the data is -EBADMSG.
 * Folded header lines are joined in the message's copy by turning their line breaks into spaces.
 * Empty input or a start/header line cut off before its line end is -ENODATA.
 * Unless lim->flags has SIPMSG_SYNTAX_ONLY, the message then passes sipmsg_check(). */
int sipmsg_parse(const char *data, size_t len, const struct sipmsg_limits *lim, struct sipmsg **out,
                 struct sip_error *err);
void sipmsg_free(struct sipmsg *m);

/* RFC 3261 checks on an indexed message (sipcheck.c): version SIP/2.0; a parseable Request-URI without
 * headers; Via, From, To, Call-ID and CSeq present, the single-valued ones once; every Via, From, To and
 * Contact element well formed (no empty parameters); CSeq below 2**31 and, in a request, naming the request's
 * method; Max-Forwards 0..255. Returns 0 or -EBADMSG with err saying what and where. Elements RFC 4475 lets a
 * tolerant parser accept (a Date not in GMT, an RFC 2543 Via branch) are added to m->warnings instead. */
int sipmsg_check(struct sipmsg *m, struct sip_error *err);

/* Stream framing (TCP/TLS, RFC 3261 18.3): find where the first message in data ends.
 * Leading CRLFs (keep-alives, RFC 5626) are skipped and counted in *skip; the message then starts at
 * data + *skip and is *msg_len bytes long (headers, blank line and Content-Length body bytes).
 * Returns 0 when a whole message is present, -ENODATA when more bytes are needed (only CRLFs, or no
 * blank line yet, or the body is short), -EBADMSG when the stream cannot be framed (no or a bad
 * Content-Length in the headers: the connection must be closed), -E2BIG past max_size (0 = 65535). */
int sipmsg_frame(const char *data, size_t len, size_t max_size, size_t *skip, size_t *msg_len, struct sip_error *err);

/* First header with this id (or, for SIP_HDR_OTHER, this name compared case-insensitively; a well-known name
 * such as "Via" or "v" given this way matches both of its forms), starting the search at index *pos (updated
 * to one past the found header; pos may be NULL). Returns NULL when none is left.
 * name may be NULL when id != SIP_HDR_OTHER; it is a C string of the caller's, never wire data. */
const struct sip_hdr *sipmsg_find(const struct sipmsg *m, enum sip_hdr_id id, const char *name, size_t *pos);

/* Header id for a header name (long or compact form, case-insensitive). */
enum sip_hdr_id sip_hdr_id_of(const char *name, size_t len);

/* Comma-separated header values (Via, Contact, Route, Record-Route ...): the next element of a list,
 * never splitting inside quotes or angle brackets. *rest is the remaining list (may be empty).
 * Returns 0 when an element was produced, -ENOENT when the list is empty. */
int sip_list_next(struct sip_str *rest, struct sip_str *elem);

/* ---- typed views (borrow the buffer the slices point into) ---- */

struct sip_uri {
    struct sip_str scheme;   /* "sip", "sips", "tel", ... */
    struct sip_str user;     /* may be empty */
    struct sip_str password; /* may be empty */
    struct sip_str host;     /* IPv6 references without the brackets */
    int host_is_ipv6;
    int port;                /* 0 when absent */
    struct sip_str params;   /* everything after the first ';' up to '?' (without the leading ';') */
    struct sip_str headers;  /* after '?' */
};
/* sip/sips: user[:password]@host[:port];params?headers (port 1..65535); tel: the number is in user, params
 * after ';'; any other scheme: everything after "scheme:" is in user (opaque). Whitespace or control bytes
 * anywhere in the URI are -EBADMSG. */
int sip_uri_parse(struct sip_str s, struct sip_uri *out, struct sip_error *err);
/* Value of a ;name[=value] URI or header parameter in a params slice; 0 found (val may be empty), -ENOENT. */
int sip_param_find(struct sip_str params, const char *name, struct sip_str *val);
/* Iterate a params slice ("a=1;b;c=\"x;y\""): the next parameter's name and value (LWS around ';' and '='
 * trimmed, surrounding quotes removed from a quoted value, quoted-pairs left as written; empty value when
 * there is no '='). *rest advances past it. Returns 0, or -ENOENT when no parameter is left. */
int sip_param_next(struct sip_str *rest, struct sip_str *name, struct sip_str *val);

struct sip_via {
    struct sip_str protocol;  /* "SIP/2.0" (spans any LWS written around the '/') */
    struct sip_str transport; /* "UDP", "TCP", ... */
    struct sip_str host;      /* IPv6 without brackets */
    int host_is_ipv6;
    int port;                 /* 0 when absent */
    struct sip_str params;    /* after the first ';' */
    struct sip_str branch;    /* empty when absent */
    struct sip_str received;  /* empty when absent */
    int has_rport;            /* ;rport present (with or without a value) */
    int rport;                /* its value, 0 when empty */
};
/* One via-parm (a single element of a Via list). */
int sip_via_parse(struct sip_str value, struct sip_via *out, struct sip_error *err);
/* The first element of the first Via header. */
int sipmsg_top_via(const struct sipmsg *m, struct sip_via *out, struct sip_error *err);

struct sip_nameaddr {
    struct sip_str display; /* without quotes; may be empty */
    struct sip_str uri;     /* without the angle brackets */
    struct sip_str params;  /* header params after the URI (after the first ';'), e.g. "tag=abc;expires=60" */
    struct sip_str tag;     /* value of ;tag=, empty when absent */
};
/* From, To, Contact, Route, Record-Route element, Refer-To ... (name-addr or addr-spec). */
int sip_nameaddr_parse(struct sip_str value, struct sip_nameaddr *out, struct sip_error *err);

struct sip_cseq {
    uint32_t num;
    struct sip_str method;
};
/* -EBADMSG unless "number LWS method" with number < 2**31 (RFC 3261 8.1.1.5). */
int sip_cseq_parse(struct sip_str value, struct sip_cseq *out, struct sip_error *err);

/* Compare two slices / a slice and a C string, case-sensitively or not. */
int sip_str_eq(struct sip_str a, struct sip_str b);
int sip_str_ieq(struct sip_str a, struct sip_str b);
int sip_str_eqc(struct sip_str a, const char *c);
int sip_str_ieqc(struct sip_str a, const char *c);
static inline struct sip_str sip_str_c(const char *c);

/* The reason phrase of a status code (RFC 3261 21 and extensions; a class name such as "Client Error" for
 * codes it does not know).  Never NULL; a static string. */
const char *sip_reason_phrase(int status);

/* ---- building messages ---- */

/* A growable output buffer. Appends after a failure are no-ops; check err at the end. */
struct sipbuf {
    char *p;
    size_t len;
    size_t cap;
    int err; /* 0 or -ENOMEM / -E2BIG */
};
void sipbuf_init(struct sipbuf *b);
void sipbuf_free(struct sipbuf *b);
void sipbuf_add(struct sipbuf *b, const void *data, size_t len);
void sipbuf_adds(struct sipbuf *b, struct sip_str s);
void sipbuf_addc(struct sipbuf *b, const char *c);
/* printf-style append, bounded; format strings are ours, never wire data. */
void sipbuf_addf(struct sipbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <string.h>
static inline struct sip_str sip_str_c(const char *c)
{
    struct sip_str s = {c, c ? strlen(c) : 0};
    return s;
}

#endif
