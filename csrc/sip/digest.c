/* Digest access authentication (RFC 7616, RFC 8760): challenge and credential parsing, response
 * computation, server nonces and constant-time verification.  See digest.h. */
#include "sip/digest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sip/sip_lex.h"

static const char *const ALG_NAMES[DIGEST_ALG_COUNT_] = {
    "MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess",
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static struct sip_str cstr(const char *s)
{
    struct sip_str r = {s, s ? strlen(s) : 0};
    return r;
}

static int ieq(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (sip_lex_lower(p[i]) != sip_lex_lower(lit[i]))
            return 0;
    return 1;
}

static int is_sess(enum digest_alg a)
{
    return a == DIGEST_ALG_MD5_SESS || a == DIGEST_ALG_SHA256_SESS || a == DIGEST_ALG_SHA512_256_SESS;
}

/* 1 = MD5, 2 = SHA-256, 3 = SHA-512/256 */
static int alg_strength(enum digest_alg a)
{
    return (int)a / 2 + 1;
}

const char *digest_alg_name(enum digest_alg alg)
{
    return ((unsigned)alg < DIGEST_ALG_COUNT_) ? ALG_NAMES[alg] : NULL;
}

int digest_alg_from_name(const char *name, size_t len, enum digest_alg *out)
{
    for (int i = 0; i < DIGEST_ALG_COUNT_; i++) {
        if (name != NULL && ieq(name, len, ALG_NAMES[i])) {
            *out = (enum digest_alg)i;
            return 0;
        }
    }
    return -ENOTSUP;
}

size_t digest_alg_hex_len(enum digest_alg alg)
{
    return alg_strength(alg) == 1 ? 32 : 64;
}

/* ---- hashing --------------------------------------------------------------------------------------- */

static const EVP_MD *alg_md(enum digest_alg a)
{
    switch (alg_strength(a)) {
    case 1:
        return EVP_md5();
    case 2:
        return EVP_sha256();
    default:
        return EVP_sha512_256();
    }
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* H(parts[0] ":" parts[1] ":" ...) in lower-case hex; out holds DIGEST_HEX_MAX + 1. */
static int hash_parts(enum digest_alg alg, const struct sip_str *parts, size_t n, char *out)
{
    if ((unsigned)alg >= DIGEST_ALG_COUNT_)
        return -EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -ENOMEM;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_DigestInit_ex(ctx, alg_md(alg), NULL);
    for (size_t i = 0; ok && i < n; i++) {
        if (i > 0)
            ok = EVP_DigestUpdate(ctx, ":", 1);
        if (ok && parts[i].len > 0)
            ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].len);
    }
    if (ok)
        ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen * 2 > DIGEST_HEX_MAX)
        return -ENOTSUP; /* e.g. MD5 refused by a FIPS provider */
    to_hex(md, mdlen, out);
    return 0;
}

static int is_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = sip_lex_lower(p[i]);
        if (!sip_lex_digit(c) && !(c >= 'a' && c <= 'f'))
            return 0;
    }
    return 1;
}

/* Copy a hex value of the algorithm's length, lower-cased. */
static int copy_hash_hex(enum digest_alg alg, struct sip_str h, char *out, const char *what, char *err,
                         size_t errlen)
{
    size_t want = digest_alg_hex_len(alg);
    if (h.len != want || !is_hex(h.p, h.len))
        return fail(err, errlen, -EINVAL, "%s must be %zu hex digits for %s", what, want, digest_alg_name(alg));
    for (size_t i = 0; i < want; i++)
        out[i] = sip_lex_lower(h.p[i]);
    out[want] = '\0';
    return 0;
}

int digest_ha1(enum digest_alg alg, struct sip_str username, struct sip_str realm, struct sip_str password,
               char *out, size_t outlen)
{
    if (out == NULL || outlen < DIGEST_HEX_MAX + 1)
        return -E2BIG;
    struct sip_str parts[3] = {username, realm, password};
    return hash_parts(alg, parts, 3, out);
}

int digest_userhash(enum digest_alg alg, struct sip_str username, struct sip_str realm, char *out, size_t outlen)
{
    if (out == NULL || outlen < DIGEST_HEX_MAX + 1)
        return -E2BIG;
    struct sip_str parts[2] = {username, realm};
    return hash_parts(alg, parts, 2, out);
}

static const char *qop_name(enum digest_qop q)
{
    return q == DIGEST_QOP_AUTH_INT ? "auth-int" : "auth";
}

int digest_response(const struct digest_input *in, char *out, size_t outlen, char *err, size_t errlen)
{
    if (in == NULL || out == NULL || outlen < DIGEST_HEX_MAX + 1)
        return fail(err, errlen, -EINVAL, "no input or output buffer too small");
    if ((unsigned)in->alg >= DIGEST_ALG_COUNT_)
        return fail(err, errlen, -ENOTSUP, "unknown digest algorithm");
    if (in->qop != DIGEST_QOP_NONE && in->qop != DIGEST_QOP_AUTH && in->qop != DIGEST_QOP_AUTH_INT)
        return fail(err, errlen, -EINVAL, "qop must be none, auth or auth-int");
    if (in->nonce.len == 0)
        return fail(err, errlen, -EINVAL, "the nonce is empty");
    if ((in->qop != DIGEST_QOP_NONE || is_sess(in->alg)) && in->cnonce.len == 0)
        return fail(err, errlen, -EINVAL, "a cnonce is needed with qop or a -sess algorithm");
    char ha1[DIGEST_HEX_MAX + 1], ha2[DIGEST_HEX_MAX + 1], hbody[DIGEST_HEX_MAX + 1];
    int rc;
    if (in->ha1.len > 0)
        rc = copy_hash_hex(in->alg, in->ha1, ha1, "ha1", err, errlen);
    else
        rc = digest_ha1(in->alg, in->username, in->realm, in->password, ha1, sizeof(ha1));
    if (rc < 0)
        return rc == -EINVAL ? rc : fail(err, errlen, rc, "hash %s not available", digest_alg_name(in->alg));
    if (is_sess(in->alg)) {
        struct sip_str p[3] = {cstr(ha1), in->nonce, in->cnonce};
        if ((rc = hash_parts(in->alg, p, 3, ha1)) < 0)
            return fail(err, errlen, rc, "hash failed");
    }
    if (in->qop == DIGEST_QOP_AUTH_INT) {
        if (in->body_hash.len > 0) {
            if ((rc = copy_hash_hex(in->alg, in->body_hash, hbody, "body hash", err, errlen)) < 0)
                return rc;
        } else {
            struct sip_str p[1] = {in->body};
            if ((rc = hash_parts(in->alg, p, 1, hbody)) < 0)
                return fail(err, errlen, rc, "hash failed");
        }
        struct sip_str p[3] = {in->method, in->uri, cstr(hbody)};
        rc = hash_parts(in->alg, p, 3, ha2);
    } else {
        struct sip_str p[2] = {in->method, in->uri};
        rc = hash_parts(in->alg, p, 2, ha2);
    }
    if (rc < 0)
        return fail(err, errlen, rc, "hash failed");
    if (in->qop == DIGEST_QOP_NONE) {
        struct sip_str p[3] = {cstr(ha1), in->nonce, cstr(ha2)};
        rc = hash_parts(in->alg, p, 3, out);
    } else {
        char nc[9];
        snprintf(nc, sizeof(nc), "%08x", (unsigned)in->nc);
        struct sip_str p[6] = {cstr(ha1), in->nonce, cstr(nc), in->cnonce, cstr(qop_name(in->qop)), cstr(ha2)};
        rc = hash_parts(in->alg, p, 6, out);
    }
    return rc < 0 ? fail(err, errlen, rc, "hash failed") : 0;
}

/* ---- parsing of auth-params ------------------------------------------------------------------------ */

struct lexer {
    const char *s;
    size_t len;
    size_t pos;
};

static void lx_ws(struct lexer *l)
{
    while (l->pos < l->len && sip_lex_lws(l->s[l->pos]))
        l->pos++;
}

static struct sip_str lx_token(struct lexer *l)
{
    struct sip_str t = {l->s + l->pos, 0};
    while (l->pos < l->len && sip_lex_token(l->s[l->pos]))
        l->pos++;
    t.len = (size_t)(l->s + l->pos - t.p);
    return t;
}

/* Read a value (quoted string, unescaped, or a bare word up to ',' or LWS) into dst (NUL-terminated).
 * *quoted tells which.  -EBADMSG for an unterminated quote, -E2BIG when longer than dstlen - 1. */
static int lx_value(struct lexer *l, char *dst, size_t dstlen, int *quoted)
{
    size_t n = 0;
    int too_long = 0;
    *quoted = 0;
    if (l->pos < l->len && l->s[l->pos] == '"') {
        *quoted = 1;
        l->pos++;
        for (;;) {
            if (l->pos >= l->len)
                return -EBADMSG;
            char c = l->s[l->pos++];
            if (c == '"')
                break;
            if (c == '\\') {
                if (l->pos >= l->len)
                    return -EBADMSG;
                c = l->s[l->pos++];
            }
            if (c == '\0' || c == '\r' || c == '\n')
                return -EBADMSG;
            if (n + 1 < dstlen)
                dst[n++] = c;
            else
                too_long = 1;
        }
    } else {
        while (l->pos < l->len) {
            char c = l->s[l->pos];
            if (c == ',' || c == '"' || sip_lex_lws(c) || c == '\0')
                break;
            if (n + 1 < dstlen)
                dst[n++] = c;
            else
                too_long = 1;
            l->pos++;
        }
    }
    if (dstlen > 0)
        dst[n] = '\0';
    return too_long ? -E2BIG : 0;
}

/* Skip to the next top-level comma (outside quotes) or the end. */
static void lx_skip_item(struct lexer *l)
{
    int inq = 0;
    while (l->pos < l->len) {
        char c = l->s[l->pos];
        if (inq && c == '\\') {
            l->pos += (l->pos + 1 < l->len) ? 2 : 1;
            continue;
        }
        if (c == '"')
            inq = !inq;
        else if (c == ',' && !inq)
            return;
        l->pos++;
    }
}

/* After a value: LWS then ',' or the end.  Returns 0, or -EBADMSG for garbage. */
static int lx_after_value(struct lexer *l)
{
    lx_ws(l);
    if (l->pos < l->len && l->s[l->pos] != ',')
        return -EBADMSG;
    return 0;
}

/* A token68 (RFC 7235: the credentials of schemes such as Negotiate) followed by the end or ','.
 * Consumes it and returns 1; otherwise leaves pos and returns 0. */
static int lx_token68(struct lexer *l)
{
    size_t p = l->pos;
    while (p < l->len && (sip_lex_alpha(l->s[p]) || sip_lex_digit(l->s[p]) || strchr("-._~+/", l->s[p]) != NULL) &&
           l->s[p] != '\0')
        p++;
    if (p == l->pos)
        return 0;
    while (p < l->len && l->s[p] == '=')
        p++;
    size_t q = p;
    while (q < l->len && sip_lex_lws(l->s[q]))
        q++;
    if (q < l->len && l->s[q] != ',')
        return 0;
    l->pos = p;
    return 1;
}

static unsigned parse_qop_list(const char *v)
{
    unsigned q = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *b = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (ieq(b, (size_t)(p - b), "auth"))
            q |= DIGEST_QOP_AUTH;
        else if (ieq(b, (size_t)(p - b), "auth-int"))
            q |= DIGEST_QOP_AUTH_INT;
    }
    return q;
}

/* One "name = value" list item.  Returns 1 with name and value read, 0 when the item turned out to be the
 * scheme token of the next challenge (pos is left at it), <0 on error. */
static int lx_param(struct lexer *l, struct sip_str *name, char *val, size_t vallen, int *quoted)
{
    size_t start = l->pos;
    *name = lx_token(l);
    if (name->len == 0)
        return -EBADMSG;
    lx_ws(l);
    if (l->pos >= l->len || l->s[l->pos] != '=') {
        l->pos = start;
        return 0;
    }
    l->pos++;
    lx_ws(l);
    int rc = lx_value(l, val, vallen, quoted);
    if (rc < 0)
        return rc;
    return 1;
}

static int copy_val(char *dst, size_t dstlen, const char *v)
{
    size_t n = strlen(v);
    if (n + 1 > dstlen)
        return -E2BIG;
    memcpy(dst, v, n + 1);
    return 0;
}

int digest_challenge_next(const char *value, size_t len, size_t *pos, struct digest_challenge *ch, char *err,
                          size_t errlen)
{
    if (value == NULL || pos == NULL || ch == NULL || *pos > len)
        return fail(err, errlen, -EINVAL, "bad arguments");
    struct lexer l = {value, len, *pos};
    while (l.pos < l.len && (sip_lex_lws(l.s[l.pos]) || l.s[l.pos] == ','))
        l.pos++;
    if (l.pos >= l.len) {
        *pos = l.pos;
        return 0;
    }
    memset(ch, 0, sizeof(*ch));
    ch->alg_known = 1;
    ch->alg = DIGEST_ALG_MD5;
    struct sip_str scheme = lx_token(&l);
    if (scheme.len == 0)
        return fail(err, errlen, -EBADMSG, "expected an auth scheme at byte %zu", l.pos);
    if (scheme.len >= sizeof(ch->scheme))
        return fail(err, errlen, -EBADMSG, "auth scheme too long at byte %zu", l.pos);
    memcpy(ch->scheme, scheme.p, scheme.len);
    ch->is_digest = ieq(scheme.p, scheme.len, "Digest");
    if (l.pos < l.len && !sip_lex_lws(l.s[l.pos]) && l.s[l.pos] != ',')
        return fail(err, errlen, -EBADMSG, "expected a space after the auth scheme at byte %zu", l.pos);
    char val[DIGEST_VALUE_MAX * 4];
    int first = 1;
    for (;;) {
        lx_ws(&l);
        if (!first) {
            if (l.pos >= l.len)
                break;
            if (l.s[l.pos] != ',')
                return fail(err, errlen, -EBADMSG, "expected ',' at byte %zu", l.pos);
            while (l.pos < l.len && (l.s[l.pos] == ',' || sip_lex_lws(l.s[l.pos])))
                l.pos++;
        }
        if (first && !ch->is_digest && lx_token68(&l)) {
            first = 0;
            continue;
        }
        first = 0;
        if (l.pos >= l.len)
            break;
        struct sip_str name;
        int quoted = 0;
        size_t item = l.pos;
        int rc = lx_param(&l, &name, val, sizeof(val), &quoted);
        if (rc == 0)
            break; /* the next challenge starts here */
        if (rc < 0 && !ch->is_digest) {
            /* another scheme's token68 or syntax we do not need: skip the item */
            l.pos = item;
            lx_skip_item(&l);
            continue;
        }
        if (rc == -E2BIG)
            return fail(err, errlen, -E2BIG, "parameter value too long at byte %zu", item);
        if (rc < 0 || (rc = lx_after_value(&l)) < 0) {
            if (!ch->is_digest) {
                lx_skip_item(&l);
                continue;
            }
            return fail(err, errlen, -EBADMSG, "malformed parameter at byte %zu", item);
        }
        if (!ch->is_digest)
            continue;
        int crc = 0;
        if (ieq(name.p, name.len, "realm"))
            crc = copy_val(ch->realm, sizeof(ch->realm), val);
        else if (ieq(name.p, name.len, "nonce"))
            crc = copy_val(ch->nonce, sizeof(ch->nonce), val);
        else if (ieq(name.p, name.len, "opaque")) {
            crc = copy_val(ch->opaque, sizeof(ch->opaque), val);
            ch->has_opaque = 1;
        } else if (ieq(name.p, name.len, "algorithm")) {
            ch->alg_known = digest_alg_from_name(val, strlen(val), &ch->alg) == 0;
        } else if (ieq(name.p, name.len, "qop")) {
            ch->qop_present = 1;
            ch->qop = parse_qop_list(val);
        } else if (ieq(name.p, name.len, "stale")) {
            ch->stale = ieq(val, strlen(val), "true");
        } else if (ieq(name.p, name.len, "userhash")) {
            ch->userhash = ieq(val, strlen(val), "true");
        } else if (ieq(name.p, name.len, "charset")) {
            ch->charset_utf8 = ieq(val, strlen(val), "UTF-8");
        }
        if (crc < 0)
            return fail(err, errlen, -E2BIG, "%.*s longer than %d bytes", (int)name.len, name.p,
                        DIGEST_VALUE_MAX - 1);
    }
    *pos = l.pos;
    return 1;
}

int digest_challenge_supported(const struct digest_challenge *ch)
{
    return ch->is_digest && ch->alg_known && ch->nonce[0] != '\0' && (!ch->qop_present || ch->qop != 0);
}

int digest_challenge_pick(const struct sip_str *values, size_t n, const char *realm, struct digest_challenge *best,
                          char *err, size_t errlen)
{
    struct digest_challenge ch;
    int found = 0;
    char seen[160] = "";
    size_t seenlen = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pos = 0;
        int rc;
        while ((rc = digest_challenge_next(values[i].p, values[i].len, &pos, &ch, err, errlen)) == 1) {
            if (seenlen + 40 < sizeof(seen)) {
                const char *an = ch.alg_known ? digest_alg_name(ch.alg) : "unknown algorithm";
                int w = snprintf(seen + seenlen, sizeof(seen) - seenlen, "%s%s%s%s", seenlen ? ", " : "",
                                 ch.scheme, ch.is_digest ? " " : "", ch.is_digest ? an : "");
                if (w > 0)
                    seenlen += (size_t)w < sizeof(seen) - seenlen ? (size_t)w : 0;
            }
            if (!digest_challenge_supported(&ch))
                continue;
            if (realm != NULL && strcmp(realm, ch.realm) != 0)
                continue;
            if (!found || alg_strength(ch.alg) > alg_strength(best->alg)) {
                *best = ch;
                found = 1;
            }
        }
        if (rc < 0)
            return rc;
    }
    if (!found)
        return fail(err, errlen, -ENOENT, "no supported digest challenge%s%s (offered: %s)", realm ? " for realm " : "",
                    realm ? realm : "", seenlen ? seen : "nothing");
    return 0;
}

/* ---- output --------------------------------------------------------------------------------------- */

struct writer {
    char *p;
    size_t cap;
    size_t len;
    int err;
};

static void wr_add(struct writer *w, const char *s, size_t n)
{
    if (w->err)
        return;
    if (n >= w->cap - w->len) {
        w->err = -E2BIG;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static void wr_c(struct writer *w, const char *s)
{
    wr_add(w, s, strlen(s));
}

/* Checks a value for the quoted-string of a header: no control characters (CR, LF, NUL ...). */
static int value_ok(struct sip_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static void wr_quoted(struct writer *w, struct sip_str v)
{
    if (!value_ok(v)) {
        w->err = w->err ? w->err : -EINVAL;
        return;
    }
    wr_add(w, "\"", 1);
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] == '"' || v.p[i] == '\\')
            wr_add(w, "\\", 1);
        wr_add(w, v.p + i, 1);
    }
    wr_add(w, "\"", 1);
}

static void wr_param(struct writer *w, const char *name, struct sip_str v, int quoted)
{
    if (w->len > 0 && w->p[w->len - 1] != ' ')
        wr_c(w, ", ");
    wr_c(w, name);
    wr_c(w, "=");
    if (quoted) {
        wr_quoted(w, v);
    } else {
        for (size_t i = 0; i < v.len; i++)
            if (!sip_lex_token(v.p[i]))
                w->err = w->err ? w->err : -EINVAL;
        wr_add(w, v.p, v.len);
    }
}

static int needs_ext(struct sip_str v)
{
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.p[i] >= 0x80)
            return 1;
    return 0;
}

/* RFC 8187 ext-value: UTF-8''percent-encoded */
static void wr_ext_value(struct writer *w, struct sip_str v)
{
    static const char hx[] = "0123456789ABCDEF";
    wr_c(w, "UTF-8''");
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (sip_lex_alpha((char)c) || sip_lex_digit((char)c) || (c && strchr("!#$&+-.^_`|~", c))) {
            wr_add(w, v.p + i, 1);
        } else {
            char e[3] = {'%', hx[c >> 4], hx[c & 15]};
            wr_add(w, e, 3);
        }
    }
}

int digest_authorization_build(const struct digest_challenge *ch, const struct digest_client *cl, char *out,
                               size_t outlen, size_t *written, char *err, size_t errlen)
{
    if (ch == NULL || cl == NULL || out == NULL || outlen == 0)
        return fail(err, errlen, -EINVAL, "bad arguments");
    if (!digest_challenge_supported(ch))
        return fail(err, errlen, -ENOTSUP, "challenge %s not supported (scheme, algorithm, nonce or qop)",
                    ch->scheme);
    enum digest_qop qop = DIGEST_QOP_NONE;
    if (ch->qop_present) {
        if (ch->qop == DIGEST_QOP_AUTH_INT || (cl->qop_pref == DIGEST_QOP_AUTH_INT && (ch->qop & DIGEST_QOP_AUTH_INT)))
            qop = DIGEST_QOP_AUTH_INT;
        else
            qop = DIGEST_QOP_AUTH;
    }
    char cnonce[DIGEST_VALUE_MAX];
    struct sip_str cn = cl->cnonce;
    if (cn.len >= sizeof(cnonce))
        return fail(err, errlen, -E2BIG, "cnonce too long");
    if (cn.len == 0 && (qop != DIGEST_QOP_NONE || is_sess(ch->alg))) {
        unsigned char rnd[12];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return fail(err, errlen, -EIO, "random generator failed");
        to_hex(rnd, sizeof(rnd), cnonce);
        cn = cstr(cnonce);
    }
    if (!value_ok(cn) || memchr(cn.p ? cn.p : "", '"', cn.len) != NULL)
        return fail(err, errlen, -EINVAL, "cnonce has characters not allowed");
    struct digest_input in = {
        .alg = ch->alg,
        .qop = qop,
        .username = cl->username,
        .realm = cstr(ch->realm),
        .password = cl->password,
        .ha1 = cl->ha1,
        .nonce = cstr(ch->nonce),
        .cnonce = cn,
        .nc = cl->nc ? cl->nc : 1,
        .method = cl->method,
        .uri = cl->uri,
        .body = cl->body,
    };
    if (cl->username.len == 0 || cl->method.len == 0 || cl->uri.len == 0)
        return fail(err, errlen, -EINVAL, "username, method and uri are required");
    char resp[DIGEST_HEX_MAX + 1], uh[DIGEST_HEX_MAX + 1];
    int rc = digest_response(&in, resp, sizeof(resp), err, errlen);
    if (rc < 0)
        return rc;
    struct writer w = {out, outlen, 0, 0};
    out[0] = '\0';
    wr_c(&w, "Digest ");
    if (ch->userhash) {
        if ((rc = digest_userhash(ch->alg, cl->username, in.realm, uh, sizeof(uh))) < 0)
            return fail(err, errlen, rc, "hash failed");
        wr_param(&w, "username", cstr(uh), 1);
    } else if (needs_ext(cl->username)) {
        wr_c(&w, "username*=");
        wr_ext_value(&w, cl->username);
    } else {
        wr_param(&w, "username", cl->username, 1);
    }
    wr_param(&w, "realm", in.realm, 1);
    wr_param(&w, "nonce", in.nonce, 1);
    wr_param(&w, "uri", cl->uri, 1);
    wr_param(&w, "response", cstr(resp), 1);
    wr_param(&w, "algorithm", cstr(digest_alg_name(ch->alg)), 0);
    if (ch->has_opaque)
        wr_param(&w, "opaque", cstr(ch->opaque), 1);
    if (qop != DIGEST_QOP_NONE || is_sess(ch->alg))
        wr_param(&w, "cnonce", cn, 1);
    if (qop != DIGEST_QOP_NONE) {
        char nc[9];
        snprintf(nc, sizeof(nc), "%08x", (unsigned)in.nc);
        wr_param(&w, "qop", cstr(qop_name(qop)), 0);
        wr_param(&w, "nc", cstr(nc), 0);
    }
    if (ch->userhash)
        wr_param(&w, "userhash", cstr("true"), 0);
    if (w.err)
        return fail(err, errlen, w.err, w.err == -E2BIG ? "output buffer too small" : "a value has control characters");
    if (written)
        *written = w.len;
    return 0;
}

/* ---- credentials ---------------------------------------------------------------------------------- */

static int hexval(char c)
{
    c = sip_lex_lower(c);
    if (sip_lex_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* username* = charset "'" [language] "'" pct-encoded; only UTF-8 is taken. */
static int decode_ext_value(const char *v, char *dst, size_t dstlen)
{
    const char *q1 = strchr(v, '\'');
    if (q1 == NULL || !ieq(v, (size_t)(q1 - v), "UTF-8"))
        return -EBADMSG;
    const char *q2 = strchr(q1 + 1, '\'');
    if (q2 == NULL)
        return -EBADMSG;
    size_t n = 0;
    for (const char *p = q2 + 1; *p; p++) {
        char c = *p;
        if (c == '%') {
            int h = hexval(p[1]), lo = h >= 0 ? hexval(p[2]) : -1;
            if (h < 0 || lo < 0)
                return -EBADMSG;
            c = (char)(h * 16 + lo);
            p += 2;
        }
        if (c == '\0')
            return -EBADMSG;
        if (n + 1 >= dstlen)
            return -E2BIG;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return 0;
}

int digest_credentials_parse(const char *value, size_t len, struct digest_credentials *cr, char *err, size_t errlen)
{
    if (value == NULL || cr == NULL)
        return fail(err, errlen, -EINVAL, "bad arguments");
    memset(cr, 0, sizeof(*cr));
    cr->alg_known = 1;
    cr->alg = DIGEST_ALG_MD5;
    struct lexer l = {value, len, 0};
    lx_ws(&l);
    struct sip_str scheme = lx_token(&l);
    if (!ieq(scheme.p, scheme.len, "Digest"))
        return fail(err, errlen, -EBADMSG, "not Digest credentials");
    if (l.pos >= l.len || !sip_lex_lws(l.s[l.pos]))
        return fail(err, errlen, -EBADMSG, "expected parameters after Digest");
    char val[DIGEST_VALUE_MAX * 4];
    int have_user = 0, have_resp = 0;
    int first = 1;
    for (;;) {
        lx_ws(&l);
        if (l.pos >= l.len)
            break;
        if (!first) {
            if (l.s[l.pos] != ',')
                return fail(err, errlen, -EBADMSG, "expected ',' at byte %zu", l.pos);
            while (l.pos < l.len && (l.s[l.pos] == ',' || sip_lex_lws(l.s[l.pos])))
                l.pos++;
            if (l.pos >= l.len)
                break;
        }
        first = 0;
        struct sip_str name;
        int quoted = 0;
        size_t item = l.pos;
        int rc = lx_param(&l, &name, val, sizeof(val), &quoted);
        if (rc == 0 || (rc > 0 && lx_after_value(&l) < 0))
            return fail(err, errlen, -EBADMSG, "malformed parameter at byte %zu", item);
        if (rc < 0)
            return fail(err, errlen, rc, rc == -E2BIG ? "value too long at byte %zu" : "malformed parameter at byte %zu",
                        item);
        int crc = 0;
        size_t vl = strlen(val);
        if (ieq(name.p, name.len, "username")) {
            crc = copy_val(cr->username, sizeof(cr->username), val);
            have_user = 1;
        } else if (ieq(name.p, name.len, "username*")) {
            crc = decode_ext_value(val, cr->username, sizeof(cr->username));
            have_user = 1;
        } else if (ieq(name.p, name.len, "realm")) {
            crc = copy_val(cr->realm, sizeof(cr->realm), val);
        } else if (ieq(name.p, name.len, "nonce")) {
            crc = copy_val(cr->nonce, sizeof(cr->nonce), val);
        } else if (ieq(name.p, name.len, "uri")) {
            crc = copy_val(cr->uri, sizeof(cr->uri), val);
        } else if (ieq(name.p, name.len, "response")) {
            if (vl == 0 || vl > DIGEST_HEX_MAX || !is_hex(val, vl))
                return fail(err, errlen, -EBADMSG, "response is not a hex digest");
            crc = copy_val(cr->response, sizeof(cr->response), val);
            have_resp = 1;
        } else if (ieq(name.p, name.len, "cnonce")) {
            crc = copy_val(cr->cnonce, sizeof(cr->cnonce), val);
        } else if (ieq(name.p, name.len, "opaque")) {
            crc = copy_val(cr->opaque, sizeof(cr->opaque), val);
        } else if (ieq(name.p, name.len, "algorithm")) {
            cr->alg_known = digest_alg_from_name(val, vl, &cr->alg) == 0;
        } else if (ieq(name.p, name.len, "qop")) {
            if (ieq(val, vl, "auth"))
                cr->qop = DIGEST_QOP_AUTH;
            else if (ieq(val, vl, "auth-int"))
                cr->qop = DIGEST_QOP_AUTH_INT;
            else
                return fail(err, errlen, -EBADMSG, "qop must be auth or auth-int");
        } else if (ieq(name.p, name.len, "nc")) {
            if (vl != 8 || !is_hex(val, vl))
                return fail(err, errlen, -EBADMSG, "nc must be 8 hex digits");
            uint32_t nc = 0;
            for (size_t i = 0; i < 8; i++)
                nc = nc * 16u + (uint32_t)hexval(val[i]);
            cr->nc = nc;
            cr->has_nc = 1;
        } else if (ieq(name.p, name.len, "userhash")) {
            cr->userhash = ieq(val, vl, "true");
        }
        if (crc < 0)
            return fail(err, errlen, crc, "%.*s is malformed or too long", (int)name.len, name.p);
    }
    if (!have_user || !have_resp || cr->nonce[0] == '\0')
        return fail(err, errlen, -EBADMSG, "credentials need username, nonce and response");
    if (cr->qop != DIGEST_QOP_NONE && (!cr->has_nc || cr->cnonce[0] == '\0'))
        return fail(err, errlen, -EBADMSG, "qop needs nc and cnonce");
    return 0;
}

/* ---- server side ---------------------------------------------------------------------------------- */

#define NONCE_TS_HEX 16
#define NONCE_MAC_HEX 32

static int nonce_mac(struct sip_str secret, const char *data, size_t len, char *out_hex)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (secret.len == 0 || secret.len > 1024)
        return -EINVAL;
    if (HMAC(EVP_sha256(), secret.p, (int)secret.len, (const unsigned char *)data, len, mac, &maclen) == NULL ||
        maclen < NONCE_MAC_HEX / 2)
        return -ENOMEM;
    to_hex(mac, NONCE_MAC_HEX / 2, out_hex);
    OPENSSL_cleanse(mac, sizeof(mac));
    return 0;
}

int digest_nonce_make(struct sip_str secret, uint64_t now, const unsigned char *rnd, size_t rndlen, char *out,
                      size_t outlen)
{
    if (rnd == NULL || rndlen == 0 || rndlen > 32 || out == NULL)
        return -EINVAL;
    size_t datalen = NONCE_TS_HEX + 2 * rndlen;
    if (outlen < datalen + NONCE_MAC_HEX + 1)
        return -E2BIG;
    snprintf(out, outlen, "%016llx", (unsigned long long)now);
    to_hex(rnd, rndlen, out + NONCE_TS_HEX);
    return nonce_mac(secret, out, datalen, out + datalen);
}

enum digest_nonce_state digest_nonce_check(struct sip_str secret, struct sip_str nonce, uint64_t now,
                                           uint64_t max_age)
{
    if (nonce.len < NONCE_TS_HEX + 2 + NONCE_MAC_HEX || nonce.len > NONCE_TS_HEX + 64 + NONCE_MAC_HEX ||
        (nonce.len - NONCE_TS_HEX - NONCE_MAC_HEX) % 2 != 0 || !is_hex(nonce.p, nonce.len))
        return DIGEST_NONCE_BAD;
    size_t datalen = nonce.len - NONCE_MAC_HEX;
    char mac[NONCE_MAC_HEX + 1];
    if (nonce_mac(secret, nonce.p, datalen, mac) < 0)
        return DIGEST_NONCE_BAD;
    if (CRYPTO_memcmp(mac, nonce.p + datalen, NONCE_MAC_HEX) != 0)
        return DIGEST_NONCE_BAD;
    uint64_t ts = 0;
    for (size_t i = 0; i < NONCE_TS_HEX; i++)
        ts = ts * 16u + (uint64_t)hexval(nonce.p[i]);
    if (ts > now + 60) /* from the future: not ours to trust */
        return DIGEST_NONCE_BAD;
    if (now > ts && now - ts > max_age)
        return DIGEST_NONCE_STALE;
    return DIGEST_NONCE_OK;
}

int digest_challenge_build(struct sip_str realm, enum digest_alg alg, unsigned qop, struct sip_str nonce,
                           struct sip_str opaque, int stale, int userhash, char *out, size_t outlen, char *err,
                           size_t errlen)
{
    if (out == NULL || outlen == 0 || (unsigned)alg >= DIGEST_ALG_COUNT_ || nonce.len == 0 ||
        (qop & ~(unsigned)(DIGEST_QOP_AUTH | DIGEST_QOP_AUTH_INT)) != 0)
        return fail(err, errlen, -EINVAL, "bad arguments (algorithm, qop or empty nonce)");
    struct writer w = {out, outlen, 0, 0};
    out[0] = '\0';
    wr_c(&w, "Digest ");
    wr_param(&w, "realm", realm, 1);
    wr_param(&w, "nonce", nonce, 1);
    if (opaque.len > 0)
        wr_param(&w, "opaque", opaque, 1);
    wr_param(&w, "algorithm", cstr(digest_alg_name(alg)), 0);
    if (qop) {
        const char *q = qop == (DIGEST_QOP_AUTH | DIGEST_QOP_AUTH_INT) ? "auth,auth-int" : qop_name((enum digest_qop)qop);
        wr_param(&w, "qop", cstr(q), 1);
    }
    if (stale)
        wr_param(&w, "stale", cstr("true"), 0);
    if (userhash)
        wr_param(&w, "userhash", cstr("true"), 0);
    if (w.err)
        return fail(err, errlen, w.err, w.err == -E2BIG ? "output buffer too small" : "a value has control characters");
    return 0;
}

int digest_verify(const struct digest_credentials *cr, const struct digest_verify_args *a, char *err,
                  size_t errlen)
{
    if (cr == NULL || a == NULL)
        return fail(err, errlen, -EINVAL, "bad arguments");
    if (!cr->alg_known)
        return fail(err, errlen, -ENOTSUP, "algorithm not supported");
    if (strlen(cr->realm) != a->realm.len || memcmp(cr->realm, a->realm.p ? a->realm.p : "", a->realm.len) != 0)
        return fail(err, errlen, -EACCES, "realm does not match");
    enum digest_nonce_state ns = digest_nonce_check(a->secret, cstr(cr->nonce), a->now, a->max_age);
    if (ns == DIGEST_NONCE_BAD)
        return fail(err, errlen, -EACCES, "nonce was not issued here");
    size_t ulen = strlen(cr->username);
    if (cr->userhash) {
        char uh[DIGEST_HEX_MAX + 1];
        int rc = digest_userhash(cr->alg, a->username, a->realm, uh, sizeof(uh));
        if (rc < 0)
            return fail(err, errlen, rc, "hash failed");
        size_t hl = strlen(uh);
        char low[DIGEST_HEX_MAX + 1];
        if (ulen != hl)
            return fail(err, errlen, -EACCES, "userhash does not match");
        for (size_t i = 0; i < hl; i++)
            low[i] = sip_lex_lower(cr->username[i]);
        if (CRYPTO_memcmp(low, uh, hl) != 0)
            return fail(err, errlen, -EACCES, "userhash does not match");
    } else if (ulen != a->username.len || memcmp(cr->username, a->username.p ? a->username.p : "", ulen) != 0) {
        return fail(err, errlen, -EACCES, "user name does not match");
    }
    struct digest_input in = {
        .alg = cr->alg,
        .qop = cr->qop,
        .username = a->username,
        .realm = a->realm,
        .password = a->password,
        .ha1 = a->ha1,
        .nonce = cstr(cr->nonce),
        .cnonce = cstr(cr->cnonce),
        .nc = cr->nc,
        .method = a->method,
        .uri = cstr(cr->uri),
        .body = a->body,
    };
    char expect[DIGEST_HEX_MAX + 1];
    int rc = digest_response(&in, expect, sizeof(expect), err, errlen);
    if (rc < 0)
        return rc;
    size_t el = strlen(expect);
    char got[DIGEST_HEX_MAX + 1] = {0};
    size_t gl = strlen(cr->response);
    for (size_t i = 0; i < gl && i < DIGEST_HEX_MAX; i++)
        got[i] = sip_lex_lower(cr->response[i]);
    /* the lengths are public (fixed by the algorithm); the digits are compared in constant time */
    int diff = (gl != el) | (CRYPTO_memcmp(got, expect, el) != 0);
    OPENSSL_cleanse(expect, sizeof(expect));
    if (diff)
        return fail(err, errlen, -EACCES, "wrong response (password or request differs)");
    return ns == DIGEST_NONCE_STALE ? DIGEST_VERIFY_STALE : 0;
}
