/* Unit tests of csrc/sip/digest.c: every vector of /work/shared/corpus/digest/vectors.json (as a table
 * here), the two published errata as negative tests, challenge parsing edge cases, and the server side. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "sip/digest.h"

static struct sip_str S(const char *s)
{
    struct sip_str r = {s, s ? strlen(s) : 0};
    return r;
}

struct vector {
    const char *id;
    enum digest_alg alg;
    const char *user, *realm, *pass, *method, *uri, *nonce;
    enum digest_qop qop;
    const char *nc_hex, *cnonce, *body_hash;
    const char *ha1, *response;
};

#define NONCE_A "dcd98b7102dd2f0e8b11d0f600bfb0c093"
#define NONCE_7616 "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
#define CNONCE_7616 "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
#define JASON "J\xc3\xa4s\xc3\xb8n Doe"

static const struct vector VECTORS[] = {
    {"rfc2617-3.5", DIGEST_ALG_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
     NONCE_A, DIGEST_QOP_AUTH, "00000001", "0a4f113b", NULL, "939e7578ed9e3c518a452acee763bce9",
     "6629fae49393a05397450978507c4ef1"},
    {"rfc2069-2.4-errata", DIGEST_ALG_MD5, "Mufasa", "testrealm@host.com", "CircleOfLife", "GET", "/dir/index.html",
     NONCE_A, DIGEST_QOP_NONE, NULL, NULL, NULL, "4945ecf42b1bb868634058a845bedde8",
     "1949323746fe6a43ef61f9606e7febea"},
    {"rfc7616-3.9.1-md5", DIGEST_ALG_MD5, "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
     "/dir/index.html", NONCE_7616, DIGEST_QOP_AUTH, "00000001", CNONCE_7616, NULL,
     "3d78807defe7de2157e2b0b6573a855f", "8ca523f5e9506fed4657c9700eebdbec"},
    {"rfc7616-3.9.1-sha256", DIGEST_ALG_SHA256, "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
     "/dir/index.html", NONCE_7616, DIGEST_QOP_AUTH, "00000001", CNONCE_7616, NULL,
     "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
     "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
    {"rfc7616-3.9.2-sha512-256-userhash", DIGEST_ALG_SHA512_256, JASON, "api@example.org", "Secret, or not?", "GET",
     "/doe.json", "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", DIGEST_QOP_AUTH, "00000001",
     "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v", NULL,
     "2d3d9f12c9f3d30011259dc5fecee005ae24de40e3e1f61806d03e65f1e6024f",
     "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"},
    {"draft-smith-3.1", DIGEST_ALG_MD5, "bob", "biloxi.com", "zanzibar", "INVITE", "sip:bob@biloxi.com", NONCE_A,
     DIGEST_QOP_NONE, NULL, NULL, NULL, "12af60467a33e8518da5c68bbff12b11", "bf57e4e0d0bffc0fbaedce64d59add5e"},
    {"draft-smith-3.2", DIGEST_ALG_MD5, "bob", "biloxi.com", "zanzibar", "INVITE", "sip:bob@biloxi.com", NONCE_A,
     DIGEST_QOP_AUTH, "00000001", "0a4f113b", NULL, "12af60467a33e8518da5c68bbff12b11",
     "89eb0059246c02b2f6ee02c7961d5ea3"},
    {"draft-smith-3.3", DIGEST_ALG_MD5, "bob", "biloxi.com", "zanzibar", "INVITE", "sip:bob@biloxi.com", NONCE_A,
     DIGEST_QOP_AUTH, "00000001", "0a4f113b", NULL, "12af60467a33e8518da5c68bbff12b11",
     "89eb0059246c02b2f6ee02c7961d5ea3"},
    {"draft-smith-3.4", DIGEST_ALG_MD5_SESS, "bob", "biloxi.com", "zanzibar", "INVITE", "sip:bob@biloxi.com", NONCE_A,
     DIGEST_QOP_AUTH, "00000001", "0a4f113b", NULL, "12af60467a33e8518da5c68bbff12b11",
     "e4e4ea61d186d07a92c9e1f6919902e9"},
    {"draft-smith-3.5", DIGEST_ALG_MD5, "bob", "biloxi.com", "zanzibar", "INVITE", "sip:bob@biloxi.com", NONCE_A,
     DIGEST_QOP_AUTH_INT, "00000001", "0a4f113b", "c1ed018b8ec4a3b170c0921f5b564e48",
     "12af60467a33e8518da5c68bbff12b11", "bdbeebb2da6adb6bca02599c2239e192"},
    {"draft-smith-3.6", DIGEST_ALG_MD5_SESS, "bob", "biloxi.com", "zanzibar", "INVITE", "sip:bob@biloxi.com", NONCE_A,
     DIGEST_QOP_AUTH_INT, "00000001", "0a4f113b", "c1ed018b8ec4a3b170c0921f5b564e48",
     "12af60467a33e8518da5c68bbff12b11", "91984da2d8663716e91554859c22ca70"},
};
#define NVECTORS (sizeof(VECTORS) / sizeof(VECTORS[0]))

static struct digest_input input_of(const struct vector *v)
{
    struct digest_input in = {
        .alg = v->alg,
        .qop = v->qop,
        .username = S(v->user),
        .realm = S(v->realm),
        .password = S(v->pass),
        .nonce = S(v->nonce),
        .cnonce = S(v->cnonce),
        .nc = 1,
        .method = S(v->method),
        .uri = S(v->uri),
        .body_hash = S(v->body_hash),
    };
    return in;
}

static void test_every_corpus_vector(void)
{
    CHECK_EQ_INT(NVECTORS, 11);
    for (size_t i = 0; i < NVECTORS; i++) {
        const struct vector *v = &VECTORS[i];
        char ha1[DIGEST_HEX_MAX + 1], resp[DIGEST_HEX_MAX + 1], err[160] = "";
        CHECK_EQ_INT(digest_ha1(v->alg, S(v->user), S(v->realm), S(v->pass), ha1, sizeof(ha1)), 0);
        CHECK_STR(S(ha1), v->ha1);
        struct digest_input in = input_of(v);
        int rc = digest_response(&in, resp, sizeof(resp), err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", v->id, err);
        CHECK_EQ_INT(rc, 0);
        CHECK_STR(S(resp), v->response);
        /* the same with the precomputed HA1 instead of the password */
        in.password = S(NULL);
        in.ha1 = S(v->ha1);
        CHECK_EQ_INT(digest_response(&in, resp, sizeof(resp), NULL, 0), 0);
        CHECK_STR(S(resp), v->response);
    }
}

static void test_rfc2069_printed_value_is_the_erratum(void)
{
    struct digest_input in = input_of(&VECTORS[1]);
    char resp[DIGEST_HEX_MAX + 1];
    CHECK_EQ_INT(digest_response(&in, resp, sizeof(resp), NULL, 0), 0);
    CHECK(strcmp(resp, "e966c932a9242554e42c8ee200cec7f6") != 0);
}

static void test_sha512_256_userhash_is_fips_not_truncated_sha512(void)
{
    const struct vector *v = &VECTORS[4];
    char uh[DIGEST_HEX_MAX + 1], resp[DIGEST_HEX_MAX + 1];
    CHECK_EQ_INT(strlen(JASON), 11); /* 4ac3a473c3b86e20446f65 */
    CHECK_EQ_INT(digest_userhash(v->alg, S(v->user), S(v->realm), uh, sizeof(uh)), 0);
    CHECK_STR(S(uh), "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b");
    CHECK(strcmp(uh, "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec") != 0);
    struct digest_input in = input_of(v);
    CHECK_EQ_INT(digest_response(&in, resp, sizeof(resp), NULL, 0), 0);
    CHECK(strcmp(resp, "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd") != 0);
}

static void test_auth_int_hashes_the_body(void)
{
    /* H(body) computed here equals a body hash given directly */
    const char *body = "v=0\r\n";
    char resp1[DIGEST_HEX_MAX + 1], resp2[DIGEST_HEX_MAX + 1], empty[DIGEST_HEX_MAX + 1];
    struct digest_input in = input_of(&VECTORS[9]);
    in.body_hash = S(NULL);
    in.body = S(body);
    CHECK_EQ_INT(digest_response(&in, resp1, sizeof(resp1), NULL, 0), 0);
    in.body = S(NULL);
    in.body_hash = S("e9a0ae66e3e3e6b0b6e6d1c0d5b0f0a1"); /* not H("v=0\r\n") */
    CHECK_EQ_INT(digest_response(&in, resp2, sizeof(resp2), NULL, 0), 0);
    CHECK(strcmp(resp1, resp2) != 0);
    in.body_hash = S("d41d8cd98f00b204e9800998ecf8427e"); /* MD5("") */
    CHECK_EQ_INT(digest_response(&in, resp2, sizeof(resp2), NULL, 0), 0);
    in.body_hash = S(NULL);
    CHECK_EQ_INT(digest_response(&in, empty, sizeof(empty), NULL, 0), 0);
    CHECK(strcmp(resp2, empty) == 0);
    in.body_hash = S("xyz");
    CHECK_EQ_INT(digest_response(&in, resp2, sizeof(resp2), NULL, 0), -EINVAL);
}

static void test_response_argument_errors(void)
{
    struct digest_input in = input_of(&VECTORS[0]);
    char small[8], resp[DIGEST_HEX_MAX + 1], err[160] = "";
    CHECK(digest_response(&in, small, sizeof(small), NULL, 0) < 0);
    in.cnonce = S(NULL);
    CHECK_EQ_INT(digest_response(&in, resp, sizeof(resp), err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "cnonce") != NULL);
    in = input_of(&VECTORS[0]);
    in.alg = DIGEST_ALG_COUNT_;
    CHECK_EQ_INT(digest_response(&in, resp, sizeof(resp), NULL, 0), -ENOTSUP);
    in = input_of(&VECTORS[0]);
    in.ha1 = S("1234");
    CHECK_EQ_INT(digest_response(&in, resp, sizeof(resp), NULL, 0), -EINVAL);
    CHECK_EQ_INT(digest_ha1(DIGEST_ALG_MD5, S("a"), S("b"), S("c"), small, sizeof(small)), -E2BIG);
}

/* ---- challenges ---------------------------------------------------------------------------------- */

static int parse_one(const char *v, struct digest_challenge *ch)
{
    size_t pos = 0;
    return digest_challenge_next(v, strlen(v), &pos, ch, NULL, 0);
}

static void test_challenge_basic_fields(void)
{
    struct digest_challenge ch;
    CHECK_EQ_INT(parse_one("Digest realm=\"biloxi.com\", nonce=\"abc\", opaque=\"o\\\"q\", algorithm=sha-256, "
                           "qop=\"auth,auth-int\", stale=TRUE, userhash=true, charset=UTF-8, domain=\"sip:a\"",
                           &ch),
                 1);
    CHECK(ch.is_digest);
    CHECK_STR(S(ch.realm), "biloxi.com");
    CHECK_STR(S(ch.nonce), "abc");
    CHECK_STR(S(ch.opaque), "o\"q");
    CHECK(ch.has_opaque && ch.alg_known && ch.alg == DIGEST_ALG_SHA256);
    CHECK_EQ_INT(ch.qop, DIGEST_QOP_AUTH | DIGEST_QOP_AUTH_INT);
    CHECK(ch.stale && ch.userhash && ch.charset_utf8);
    CHECK(digest_challenge_supported(&ch));
    /* defaults: MD5, no qop; unquoted values; odd spacing */
    CHECK_EQ_INT(parse_one("  digest   realm = biloxi.com ,nonce=  \"n\"", &ch), 1);
    CHECK(ch.alg == DIGEST_ALG_MD5 && !ch.qop_present && !ch.stale);
    CHECK_STR(S(ch.realm), "biloxi.com");
    CHECK(digest_challenge_supported(&ch));
}

static void test_challenge_several_in_one_value(void)
{
    const char *v = "Basic realm=\"x\", Digest realm=\"r\", nonce=\"1\", algorithm=MD5, qop=\"auth\", "
                    "Digest realm=\"r\", nonce=\"2\", algorithm=SHA-256, qop=\"auth\", Negotiate abc+/==, "
                    "Digest realm=\"r\", nonce=\"3\", algorithm=SHA-256-sess, qop=\"auth\"";
    struct digest_challenge ch;
    size_t pos = 0;
    const char *schemes[] = {"Basic", "Digest", "Digest", "Negotiate", "Digest"};
    int n = 0;
    int rc;
    while ((rc = digest_challenge_next(v, strlen(v), &pos, &ch, NULL, 0)) == 1) {
        if (n < 5)
            CHECK_STR(S(ch.scheme), schemes[n]);
        n++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, 5);
    struct sip_str vals[1] = {S(v)};
    CHECK_EQ_INT(digest_challenge_pick(vals, 1, NULL, &ch, NULL, 0), 0);
    CHECK(ch.alg == DIGEST_ALG_SHA256); /* strongest; the first of the equally strong */
    CHECK_STR(S(ch.nonce), "2");
}

static void test_challenge_pick_across_headers_and_realms(void)
{
    struct sip_str vals[3] = {
        S("Digest realm=\"a\", nonce=\"1\", algorithm=MD5"),
        S("Digest realm=\"b\", nonce=\"2\", algorithm=SHA-512-256, qop=\"auth\""),
        S("Digest realm=\"a\", nonce=\"3\", algorithm=SHA-256, qop=\"auth\""),
    };
    struct digest_challenge ch;
    CHECK_EQ_INT(digest_challenge_pick(vals, 3, NULL, &ch, NULL, 0), 0);
    CHECK_STR(S(ch.nonce), "2");
    CHECK_EQ_INT(digest_challenge_pick(vals, 3, "a", &ch, NULL, 0), 0);
    CHECK_STR(S(ch.nonce), "3");
    char err[160] = "";
    CHECK_EQ_INT(digest_challenge_pick(vals, 3, "zzz", &ch, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "zzz") != NULL);
}

static void test_challenge_unsupported_ones_are_skipped(void)
{
    struct sip_str vals[2] = {
        S("Digest realm=\"a\", nonce=\"1\", algorithm=SHA-1, qop=\"auth\", Digest realm=\"a\", nonce=\"2\", "
          "qop=\"auth-conf\""),
        S("Basic realm=\"a\""),
    };
    struct digest_challenge ch;
    char err[160] = "";
    CHECK_EQ_INT(digest_challenge_pick(vals, 2, NULL, &ch, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "unknown algorithm") != NULL);
    CHECK(strstr(err, "Basic") != NULL);
    CHECK_EQ_INT(parse_one("Digest realm=\"a\"", &ch), 1);
    CHECK(!digest_challenge_supported(&ch)); /* no nonce */
    CHECK_EQ_INT(digest_challenge_pick(vals, 0, NULL, &ch, NULL, 0), -ENOENT);
}

static void test_challenge_malformed(void)
{
    struct digest_challenge ch;
    CHECK_EQ_INT(parse_one("Digest realm=\"a, nonce=\"1\"", &ch), -EBADMSG); /* unterminated */
    CHECK_EQ_INT(parse_one("Digest realm=\"a\\", &ch), -EBADMSG);
    CHECK_EQ_INT(parse_one("Digest realm=\"a\" nonce=\"1\"", &ch), -EBADMSG);
    CHECK_EQ_INT(parse_one("Digest realm=\"a\" junk, nonce=1", &ch), -EBADMSG);
    CHECK_EQ_INT(parse_one("=x", &ch), -EBADMSG);
    CHECK_EQ_INT(parse_one("Digest\"realm\"", &ch), -EBADMSG);
    CHECK_EQ_INT(parse_one("", &ch), 0);
    CHECK_EQ_INT(parse_one(" , ,", &ch), 0);
    char longv[1200];
    strcpy(longv, "Digest realm=\"a\", nonce=\"");
    size_t l = strlen(longv);
    memset(longv + l, 'n', 600);
    strcpy(longv + l + 600, "\"");
    CHECK_EQ_INT(parse_one(longv, &ch), -E2BIG);
    /* lengths are honoured: a value cut short by len is unterminated, NULs inside are refused */
    const char cut[] = "Digest realm=\"abc\"";
    size_t pos = 0;
    CHECK_EQ_INT(digest_challenge_next(cut, 16, &pos, &ch, NULL, 0), -EBADMSG);
    const char nul[] = "Digest realm=\"a\0b\", nonce=\"1\"";
    pos = 0;
    CHECK_EQ_INT(digest_challenge_next(nul, sizeof(nul) - 1, &pos, &ch, NULL, 0), -EBADMSG);
    pos = 99;
    CHECK_EQ_INT(digest_challenge_next(cut, 5, &pos, &ch, NULL, 0), -EINVAL);
}

/* ---- client build and server verify ------------------------------------------------------------------ */

static void test_authorization_build_matches_vector(void)
{
    struct digest_challenge ch;
    CHECK_EQ_INT(parse_one("Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, "
                           "nonce=\"" NONCE_7616 "\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
                           &ch),
                 1);
    struct digest_client cl = {
        .username = S("Mufasa"),
        .password = S("Circle of Life"),
        .method = S("GET"),
        .uri = S("/dir/index.html"),
        .cnonce = S(CNONCE_7616),
        .nc = 1,
    };
    char out[1024], err[160] = "";
    size_t n = 0;
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, out, sizeof(out), &n, err, sizeof(err)), 0);
    CHECK_EQ_INT(n, strlen(out));
    CHECK(strncmp(out, "Digest username=\"Mufasa\", realm=\"http-auth@example.org\"", 55) == 0);
    CHECK(strstr(out, "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\"") != NULL);
    CHECK(strstr(out, "algorithm=SHA-256") != NULL);
    CHECK(strstr(out, "qop=auth, nc=00000001") != NULL);
    CHECK(strstr(out, "opaque=\"FQhe/") != NULL);
    struct digest_credentials cr;
    CHECK_EQ_INT(digest_credentials_parse(out, n, &cr, err, sizeof(err)), 0);
    CHECK_STR(S(cr.username), "Mufasa");
    CHECK_STR(S(cr.uri), "/dir/index.html");
    CHECK(cr.qop == DIGEST_QOP_AUTH && cr.nc == 1 && cr.alg == DIGEST_ALG_SHA256);
    /* too small a buffer */
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, out, 40, &n, NULL, 0), -E2BIG);
    /* a line break in a value is refused, never written */
    cl.uri = S("/a\r\nX: y");
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, out, sizeof(out), &n, NULL, 0), -EINVAL);
}

static void test_authorization_userhash_and_username_star(void)
{
    const struct vector *v = &VECTORS[4];
    struct digest_challenge ch;
    CHECK_EQ_INT(parse_one("Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, "
                           "nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", charset=UTF-8, userhash=true",
                           &ch),
                 1);
    struct digest_client cl = {.username = S(v->user), .password = S(v->pass), .method = S("GET"),
                               .uri = S("/doe.json"), .cnonce = S(v->cnonce), .nc = 1};
    char out[1024];
    size_t n;
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, out, sizeof(out), &n, NULL, 0), 0);
    CHECK(strstr(out, "username=\"793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b\"") != NULL);
    CHECK(strstr(out, "userhash=true") != NULL);
    CHECK(strstr(out, v->response) != NULL);
    ch.userhash = 0;
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, out, sizeof(out), &n, NULL, 0), 0);
    CHECK(strstr(out, "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe") != NULL);
    struct digest_credentials cr;
    CHECK_EQ_INT(digest_credentials_parse(out, n, &cr, NULL, 0), 0);
    CHECK_STR(S(cr.username), JASON);
}

static void test_authorization_auth_int_and_generated_cnonce(void)
{
    struct digest_challenge ch;
    CHECK_EQ_INT(parse_one("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\", algorithm=SHA-256-sess", &ch), 1);
    struct digest_client cl = {.username = S("u"), .password = S("p"), .method = S("INVITE"),
                               .uri = S("sip:x@y"), .body = S("v=0\r\n")};
    char a[1024], b[1024];
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, a, sizeof(a), NULL, NULL, 0), 0);
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, b, sizeof(b), NULL, NULL, 0), 0);
    CHECK(strstr(a, "qop=auth-int") != NULL);
    CHECK(strcmp(a, b) != 0); /* fresh random cnonce each time */
    struct digest_credentials cr;
    CHECK_EQ_INT(digest_credentials_parse(a, strlen(a), &cr, NULL, 0), 0);
    CHECK_EQ_INT(strlen(cr.cnonce), 24);
    /* qop absent (RFC 2069 mode): no cnonce, nc or qop written */
    CHECK_EQ_INT(parse_one("Digest realm=\"biloxi.com\", nonce=\"" NONCE_A "\"", &ch), 1);
    cl = (struct digest_client){.username = S("bob"), .password = S("zanzibar"), .method = S("INVITE"),
                                .uri = S("sip:bob@biloxi.com")};
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, a, sizeof(a), NULL, NULL, 0), 0);
    CHECK(strstr(a, "response=\"bf57e4e0d0bffc0fbaedce64d59add5e\"") != NULL);
    CHECK(strstr(a, "cnonce") == NULL && strstr(a, "nc=") == NULL && strstr(a, "qop") == NULL);
}

static void test_credentials_malformed(void)
{
    struct digest_credentials cr;
    const char *bad[] = {
        "Basic dXNlcjpwYXNz",
        "Digest username=\"u\", nonce=\"n\"",                                 /* no response */
        "Digest username=\"u\", nonce=\"n\", response=\"xyz\"",                /* not hex */
        "Digest username=\"u\", nonce=\"n\", response=\"ab\", qop=auth",       /* qop without nc/cnonce */
        "Digest username=\"u\", nonce=\"n\", response=\"ab\", nc=1, qop=auth", /* nc not 8 digits */
        "Digest username=\"u\" nonce=\"n\", response=\"ab\"",
        "Digest username*=latin1''x, nonce=\"n\", response=\"ab\"",
        "Digest username*=UTF-8''%zz, nonce=\"n\", response=\"ab\"",
        "Digest username*=UTF-8''a%00b, nonce=\"n\", response=\"ab\"",
        "Digest",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = digest_credentials_parse(bad[i], strlen(bad[i]), &cr, NULL, 0);
        if (rc >= 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(rc < 0);
    }
}

static const char SECRET[] = "server-secret";

static void test_nonce_fresh_stale_forged(void)
{
    unsigned char rnd[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char nonce[128];
    CHECK_EQ_INT(digest_nonce_make(S(SECRET), 1000, rnd, sizeof(rnd), nonce, sizeof(nonce)), 0);
    CHECK_EQ_INT(strlen(nonce), 16 + 16 + 32);
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), S(nonce), 1000, 30), DIGEST_NONCE_OK);
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), S(nonce), 1030, 30), DIGEST_NONCE_OK);
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), S(nonce), 1031, 30), DIGEST_NONCE_STALE);
    CHECK_EQ_INT(digest_nonce_check(S("other"), S(nonce), 1000, 30), DIGEST_NONCE_BAD);
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), S(nonce), 900, 30), DIGEST_NONCE_BAD); /* from the future */
    char forged[128];
    strcpy(forged, nonce);
    forged[15] = forged[15] == '0' ? '1' : '0'; /* move the timestamp */
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), S(forged), 1000, 30), DIGEST_NONCE_BAD);
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), S("abc"), 1000, 30), DIGEST_NONCE_BAD);
    struct sip_str cut = {nonce, strlen(nonce) - 1};
    CHECK_EQ_INT(digest_nonce_check(S(SECRET), cut, 1000, 30), DIGEST_NONCE_BAD);
    CHECK_EQ_INT(digest_nonce_make(S(SECRET), 1000, rnd, sizeof(rnd), nonce, 40), -E2BIG);
    CHECK_EQ_INT(digest_nonce_make(S(SECRET), 1000, rnd, 0, nonce, sizeof(nonce)), -EINVAL);
}

/* Build a challenge, answer it as a client, verify it as the server. */
static int round_trip(enum digest_alg alg, unsigned qop, int userhash, const char *client_pass, uint64_t now_verify,
                      const char *verify_body)
{
    unsigned char rnd[16] = {9};
    char nonce[128], chv[512], auth[1024], err[160] = "";
    if (digest_nonce_make(S(SECRET), 5000, rnd, sizeof(rnd), nonce, sizeof(nonce)) < 0)
        return -1000;
    if (digest_challenge_build(S("pysiptest"), alg, qop, S(nonce), S("op"), 0, userhash, chv, sizeof(chv), err,
                               sizeof(err)) < 0)
        return -1001;
    struct digest_challenge ch;
    size_t pos = 0;
    if (digest_challenge_next(chv, strlen(chv), &pos, &ch, NULL, 0) != 1)
        return -1002;
    struct digest_client cl = {.username = S("alice"), .password = S(client_pass), .method = S("REGISTER"),
                               .uri = S("sip:pysiptest"), .body = S("body"), .nc = 1,
                               .qop_pref = DIGEST_QOP_AUTH_INT};
    if (digest_authorization_build(&ch, &cl, auth, sizeof(auth), NULL, err, sizeof(err)) < 0)
        return -1003;
    struct digest_credentials cr;
    if (digest_credentials_parse(auth, strlen(auth), &cr, err, sizeof(err)) < 0)
        return -1004;
    struct digest_verify_args a = {.method = S("REGISTER"), .body = S(verify_body), .username = S("alice"),
                                   .password = S("secret"), .realm = S("pysiptest"), .secret = S(SECRET),
                                   .now = now_verify, .max_age = 30};
    return digest_verify(&cr, &a, err, sizeof(err));
}

static void test_server_round_trip_every_algorithm(void)
{
    for (int alg = 0; alg < DIGEST_ALG_COUNT_; alg++) {
        CHECK_EQ_INT(round_trip((enum digest_alg)alg, DIGEST_QOP_AUTH, 0, "secret", 5001, "body"), 0);
        CHECK_EQ_INT(round_trip((enum digest_alg)alg, DIGEST_QOP_AUTH, 1, "secret", 5001, "body"), 0);
        CHECK_EQ_INT(round_trip((enum digest_alg)alg, DIGEST_QOP_AUTH | DIGEST_QOP_AUTH_INT, 0, "secret", 5001,
                                "body"),
                     0);
        CHECK_EQ_INT(round_trip((enum digest_alg)alg, 0, 0, "secret", 5001, "body"), 0);
        CHECK_EQ_INT(round_trip((enum digest_alg)alg, DIGEST_QOP_AUTH, 0, "wrong", 5001, "body"), -EACCES);
    }
    /* auth-int protects the body; auth does not */
    CHECK_EQ_INT(round_trip(DIGEST_ALG_SHA256, DIGEST_QOP_AUTH_INT, 0, "secret", 5001, "other body"), -EACCES);
    CHECK_EQ_INT(round_trip(DIGEST_ALG_SHA256, DIGEST_QOP_AUTH, 0, "secret", 5001, "other body"), 0);
    /* a right answer on an old nonce is stale; a wrong answer on an old nonce is just wrong */
    CHECK_EQ_INT(round_trip(DIGEST_ALG_SHA256, DIGEST_QOP_AUTH, 0, "secret", 6000, "body"), DIGEST_VERIFY_STALE);
    CHECK_EQ_INT(round_trip(DIGEST_ALG_SHA256, DIGEST_QOP_AUTH, 0, "wrong", 6000, "body"), -EACCES);
}

static void test_verify_rejects_other_realm_user_and_forged_nonce(void)
{
    struct digest_credentials cr;
    const char *v = "Digest username=\"alice\", realm=\"pysiptest\", nonce=\"0000000000001388aaaa"
                    "00000000000000000000000000000000\", uri=\"sip:x\", response=\"00\"";
    CHECK_EQ_INT(digest_credentials_parse(v, strlen(v), &cr, NULL, 0), 0);
    struct digest_verify_args a = {.method = S("REGISTER"), .username = S("alice"), .password = S("secret"),
                                   .realm = S("pysiptest"), .secret = S(SECRET), .now = 5000, .max_age = 30};
    char err[160] = "";
    CHECK_EQ_INT(digest_verify(&cr, &a, err, sizeof(err)), -EACCES);
    CHECK(strstr(err, "nonce") != NULL);
    a.realm = S("other");
    CHECK_EQ_INT(digest_verify(&cr, &a, err, sizeof(err)), -EACCES);
    CHECK(strstr(err, "realm") != NULL);
    /* HA1 given instead of the password; wrong user name */
    unsigned char rnd[4] = {1};
    char nonce[128], auth[1024], ha1[DIGEST_HEX_MAX + 1];
    CHECK_EQ_INT(digest_nonce_make(S(SECRET), 5000, rnd, sizeof(rnd), nonce, sizeof(nonce)), 0);
    struct digest_challenge ch = {.is_digest = 1, .alg_known = 1, .alg = DIGEST_ALG_SHA256, .qop_present = 1,
                                  .qop = DIGEST_QOP_AUTH};
    strcpy(ch.realm, "pysiptest");
    strcpy(ch.nonce, nonce);
    struct digest_client cl = {.username = S("alice"), .password = S("secret"), .method = S("BYE"),
                               .uri = S("sip:x")};
    CHECK_EQ_INT(digest_authorization_build(&ch, &cl, auth, sizeof(auth), NULL, NULL, 0), 0);
    CHECK_EQ_INT(digest_credentials_parse(auth, strlen(auth), &cr, NULL, 0), 0);
    CHECK_EQ_INT(digest_ha1(DIGEST_ALG_SHA256, S("alice"), S("pysiptest"), S("secret"), ha1, sizeof(ha1)), 0);
    a = (struct digest_verify_args){.method = S("BYE"), .username = S("alice"), .ha1 = S(ha1),
                                    .realm = S("pysiptest"), .secret = S(SECRET), .now = 5000, .max_age = 30};
    CHECK_EQ_INT(digest_verify(&cr, &a, NULL, 0), 0);
    a.method = S("INVITE");
    CHECK_EQ_INT(digest_verify(&cr, &a, NULL, 0), -EACCES);
    a.method = S("BYE");
    a.username = S("bob");
    CHECK_EQ_INT(digest_verify(&cr, &a, NULL, 0), -EACCES);
}

static void test_alg_names(void)
{
    enum digest_alg a;
    CHECK_EQ_INT(digest_alg_from_name("sha-512-256-SESS", 16, &a), 0);
    CHECK(a == DIGEST_ALG_SHA512_256_SESS);
    CHECK_EQ_INT(digest_alg_from_name("SHA-1", 5, &a), -ENOTSUP);
    CHECK_EQ_INT(digest_alg_from_name("MD5x", 3, &a), 0);
    CHECK(digest_alg_name(DIGEST_ALG_COUNT_) == NULL);
    CHECK_EQ_INT(digest_alg_hex_len(DIGEST_ALG_MD5_SESS), 32);
    CHECK_EQ_INT(digest_alg_hex_len(DIGEST_ALG_SHA512_256), 64);
}

int main(void)
{
    RUN(test_every_corpus_vector);
    RUN(test_rfc2069_printed_value_is_the_erratum);
    RUN(test_sha512_256_userhash_is_fips_not_truncated_sha512);
    RUN(test_auth_int_hashes_the_body);
    RUN(test_response_argument_errors);
    RUN(test_challenge_basic_fields);
    RUN(test_challenge_several_in_one_value);
    RUN(test_challenge_pick_across_headers_and_realms);
    RUN(test_challenge_unsupported_ones_are_skipped);
    RUN(test_challenge_malformed);
    RUN(test_authorization_build_matches_vector);
    RUN(test_authorization_userhash_and_username_star);
    RUN(test_authorization_auth_int_and_generated_cnonce);
    RUN(test_credentials_malformed);
    RUN(test_nonce_fresh_stale_forged);
    RUN(test_server_round_trip_every_algorithm);
    RUN(test_verify_rejects_other_realm_user_and_forged_nonce);
    RUN(test_alg_names);
    return CHECK_SUMMARY();
}
