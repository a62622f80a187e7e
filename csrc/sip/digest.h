/* Digest access authentication for SIP (RFC 7616, RFC 8760; RFC 2617/2069 compatibility).
 *
 * Client side: parse WWW-Authenticate / Proxy-Authenticate challenges (several
 * per header value and several header values), pick the strongest supported
 * one, compute the response and build the Authorization header value.
 * Server side: make a challenge whose nonce carries a timestamp protected by an
 * HMAC (so a stale nonce is told from a forged one), parse an Authorization
 * value and verify it in constant time.
 *
 * Plain C11, no Python, no I/O; hashes from OpenSSL EVP.  Functions return 0
 * (or a documented non-negative value) on success and a negative errno value on
 * failure: -EINVAL bad argument, -EBADMSG malformed input, -E2BIG a value longer
 * than the fixed buffers below or the caller's output buffer, -ENOTSUP an
 * algorithm or qop this code does not implement, -ENOMEM.  When err is not
 * NULL it receives a NUL-terminated reason.  Nothing here keeps global state.
 */
#ifndef PYSIPTEST_SIP_DIGEST_H
#define PYSIPTEST_SIP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "sip/sipmsg.h"

enum digest_alg {
    DIGEST_ALG_MD5 = 0,
    DIGEST_ALG_MD5_SESS,
    DIGEST_ALG_SHA256,
    DIGEST_ALG_SHA256_SESS,
    DIGEST_ALG_SHA512_256,
    DIGEST_ALG_SHA512_256_SESS,
    DIGEST_ALG_COUNT_ /* keep last */
};

/* qop values; a challenge offers a set of them (bit flags), a response uses one. */
enum digest_qop {
    DIGEST_QOP_NONE = 0,     /* RFC 2069 compatibility: no qop, no cnonce, no nc */
    DIGEST_QOP_AUTH = 1,
    DIGEST_QOP_AUTH_INT = 2,
};

#define DIGEST_HEX_MAX 64     /* longest hash in hex (SHA-256, SHA-512/256) */
#define DIGEST_VALUE_MAX 256  /* longest realm, nonce, opaque, cnonce, username, uri ... kept */

/* Name as written in an algorithm parameter ("SHA-256-sess"); NULL for an out-of-range value. */
const char *digest_alg_name(enum digest_alg alg);
/* Case-insensitive lookup of an algorithm name; -ENOTSUP when unknown. */
int digest_alg_from_name(const char *name, size_t len, enum digest_alg *out);
/* Hex digits of the algorithm's hash (32 or 64). */
size_t digest_alg_hex_len(enum digest_alg alg);

/* One challenge (RFC 7616 3.3).  Values are copied (quoted strings unescaped) and NUL-terminated. */
struct digest_challenge {
    int is_digest;            /* 0: another scheme (Basic, ...); only scheme is filled */
    char scheme[32];
    int alg_known;            /* 0: the algorithm parameter named something not implemented */
    enum digest_alg alg;      /* DIGEST_ALG_MD5 when the parameter is absent */
    char realm[DIGEST_VALUE_MAX];
    char nonce[DIGEST_VALUE_MAX];
    char opaque[DIGEST_VALUE_MAX];
    int has_opaque;
    unsigned qop;             /* bit set of DIGEST_QOP_AUTH / DIGEST_QOP_AUTH_INT offered; 0 when absent */
    int qop_present;          /* a qop parameter was there (even with only unknown values) */
    int stale;
    int userhash;
    int charset_utf8;
};

/* Parse the next challenge of a WWW-/Proxy-Authenticate value starting at *pos (0 at first).
 * Returns 1 and advances *pos when a challenge was parsed, 0 at the end of the value, <0 on malformed
 * input (-EBADMSG) or a value too long (-E2BIG).  Borrows value. */
int digest_challenge_next(const char *value, size_t len, size_t *pos, struct digest_challenge *ch, char *err,
                          size_t errlen);

/* A challenge this code can answer: Digest, a known algorithm, a nonce and a realm, and either no qop or
 * one of auth/auth-int offered. */
int digest_challenge_supported(const struct digest_challenge *ch);

/* Of every challenge in the n header values, the supported one with the strongest hash (SHA-512-256 over
 * SHA-256 over MD5; on a tie the first, i.e. the server's preference).  When realm is not NULL only
 * challenges of that realm count.  Returns 0 with *best filled, -ENOENT when none is supported (err says
 * what was offered), or the parse error. */
int digest_challenge_pick(const struct sip_str *values, size_t n, const char *realm, struct digest_challenge *best,
                          char *err, size_t errlen);

/* Everything a response is computed from.  Slices are borrowed. */
struct digest_input {
    enum digest_alg alg;
    enum digest_qop qop;
    struct sip_str username;  /* the plain user name (hashed here when userhash is wanted) */
    struct sip_str realm;
    struct sip_str password;  /* used when ha1 is empty */
    struct sip_str ha1;       /* optional: H(username:realm:password) in hex, instead of the password */
    struct sip_str nonce;
    struct sip_str cnonce;    /* needed with a qop and for the -sess algorithms */
    uint32_t nc;
    struct sip_str method;
    struct sip_str uri;
    struct sip_str body;      /* auth-int: the message body ... */
    struct sip_str body_hash; /* ... or H(body) in hex given directly (wins when not empty) */
};

/* H(username:realm:password) in hex into out (at least DIGEST_HEX_MAX + 1 bytes). */
int digest_ha1(enum digest_alg alg, struct sip_str username, struct sip_str realm, struct sip_str password,
               char *out, size_t outlen);
/* The userhash of RFC 7616 3.4.4: H(username:realm) in hex. */
int digest_userhash(enum digest_alg alg, struct sip_str username, struct sip_str realm, char *out, size_t outlen);
/* The request-digest (the "response" parameter) in lower-case hex into out (>= DIGEST_HEX_MAX + 1). */
int digest_response(const struct digest_input *in, char *out, size_t outlen, char *err, size_t errlen);

/* Client: build an Authorization / Proxy-Authorization value answering ch.
 * qop_pref is the qop to use when the challenge offers both (auth-int needs the body).  cnonce may be empty:
 * then one is drawn from the OpenSSL random generator.  Non-ASCII user names go into username* (RFC 8187)
 * unless the challenge asks for userhash.  Writes a NUL-terminated value; *written (may be NULL) gets its
 * length. */
struct digest_client {
    struct sip_str username;
    struct sip_str password;
    struct sip_str ha1;       /* optional instead of the password; must be for ch->alg's hash */
    struct sip_str method;
    struct sip_str uri;
    struct sip_str body;
    struct sip_str cnonce;
    uint32_t nc;              /* 0 is taken as 1 */
    enum digest_qop qop_pref;
};
int digest_authorization_build(const struct digest_challenge *ch, const struct digest_client *cl, char *out,
                               size_t outlen, size_t *written, char *err, size_t errlen);

/* Parsed Authorization / Proxy-Authorization value (RFC 7616 3.4).  Values copied and NUL-terminated. */
struct digest_credentials {
    char username[DIGEST_VALUE_MAX]; /* from username, or the decoded username* (UTF-8) */
    char realm[DIGEST_VALUE_MAX];
    char nonce[DIGEST_VALUE_MAX];
    char uri[DIGEST_VALUE_MAX * 2];
    char response[DIGEST_HEX_MAX + 1];
    char cnonce[DIGEST_VALUE_MAX];
    char opaque[DIGEST_VALUE_MAX];
    int alg_known;
    enum digest_alg alg;
    enum digest_qop qop;
    uint32_t nc;
    int has_nc;
    int userhash;
};
int digest_credentials_parse(const char *value, size_t len, struct digest_credentials *cr, char *err, size_t errlen);

/* Server: a nonce "<16 hex timestamp><random hex><32 hex HMAC-SHA256(secret, timestamp || random)>".
 * rnd is the caller's random bytes (1..32) so tests can be repeated; now is in seconds. */
int digest_nonce_make(struct sip_str secret, uint64_t now, const unsigned char *rnd, size_t rndlen, char *out,
                      size_t outlen);
enum digest_nonce_state { DIGEST_NONCE_OK = 0, DIGEST_NONCE_STALE = 1, DIGEST_NONCE_BAD = 2 };
/* Whether nonce is one we made with secret (constant-time HMAC comparison) and not older than max_age s. */
enum digest_nonce_state digest_nonce_check(struct sip_str secret, struct sip_str nonce, uint64_t now,
                                           uint64_t max_age);

/* Server: a challenge value "Digest realm=..., nonce=..., algorithm=..., qop=..." (opaque and stale and
 * userhash only when given/true).  qop is a bit set; 0 omits the parameter. */
int digest_challenge_build(struct sip_str realm, enum digest_alg alg, unsigned qop, struct sip_str nonce,
                           struct sip_str opaque, int stale, int userhash, char *out, size_t outlen, char *err,
                           size_t errlen);

/* Server: verify credentials for one request.  ha1 (hex, for cr->alg's hash) or password must be given;
 * realm is the realm the server challenged with.  The comparison of the response runs in constant time.
 * Returns 0 when the response is right and the nonce fresh, DIGEST_VERIFY_STALE (1) when the response is
 * right but the nonce too old (answer with stale=true), -EACCES when wrong (bad response, unknown or
 * forged nonce, realm mismatch), or -EINVAL/-ENOTSUP/-EBADMSG for unusable credentials. */
#define DIGEST_VERIFY_STALE 1
struct digest_verify_args {
    struct sip_str method;
    struct sip_str body;
    struct sip_str username;  /* the account's plain user name (compared with userhash when used) */
    struct sip_str password;
    struct sip_str ha1;
    struct sip_str realm;
    struct sip_str secret;
    uint64_t now;
    uint64_t max_age;
};
int digest_verify(const struct digest_credentials *cr, const struct digest_verify_args *a, char *err,
                  size_t errlen);

#endif
